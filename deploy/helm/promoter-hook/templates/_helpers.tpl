{{/* The chart's short name: the Job's generateName prefix and the name label. */}}
{{- define "promoter-hook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 35 | trimSuffix "-" }}
{{- end }}

{{/* Names of the ServiceAccount and ConfigMap: unique per release, within 63 characters. */}}
{{- define "promoter-hook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "promoter-hook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "promoter-hook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "promoter-hook: serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "promoter-hook.labels" -}}
app.kubernetes.io/name: {{ include "promoter-hook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: presync
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Hook annotations for a wave. Argo CD runs them as PreSync hooks (and then ignores Helm's); plain
`helm install/upgrade` runs them as pre-install/pre-upgrade hooks. BeforeHookCreation keeps a failed
Job for inspection until the next sync.
*/}}
{{- define "promoter-hook.hookAnnotations" -}}
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
argocd.argoproj.io/sync-wave: {{ .wave | quote }}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-delete-policy: before-hook-creation
helm.sh/hook-weight: {{ .wave | quote }}
{{- end }}
