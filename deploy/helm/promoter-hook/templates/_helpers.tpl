{{/* The chart's short name: the name label, and the default of the other names. */}}
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
app.kubernetes.io/component: hook
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The Job's hook annotations. For Argo CD (argocd: true) a Sync-phase hook in a negative wave: Argo CD
applies the ServiceAccount and ConfigMap (ordinary resources, one wave earlier) first, waits for the
Job, and applies the workloads (wave 0) only when it succeeded. BeforeHookCreation keeps a failed
Job for inspection until the next sync. For plain `helm install/upgrade` (argocd: false) a Helm hook:
pre-upgrade, and post-install when the chart creates the ServiceAccount (a pre-install hook runs
before the release's ServiceAccount exists), pre-install when it is made elsewhere.
*/}}
{{- define "promoter-hook.jobAnnotations" -}}
{{- if .Values.argocd }}
argocd.argoproj.io/hook: Sync
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
argocd.argoproj.io/sync-wave: {{ int .Values.syncWave | quote }}
{{- else }}
helm.sh/hook: {{ ternary "post-install" "pre-install" .Values.serviceAccount.create }},pre-upgrade
helm.sh/hook-delete-policy: before-hook-creation
helm.sh/hook-weight: {{ int .Values.syncWave | quote }}
{{- end }}
{{- end }}

{{/*
The ConfigMap's annotations. For Argo CD an ordinary resource one wave before the Job. For plain
Helm a hook one weight before the Job on install and upgrade: an ordinary ConfigMap would still hold
the previous release's settings when the pre-upgrade Job reads it. Recreating a ConfigMap is
harmless (unlike a ServiceAccount, see serviceaccount.yaml).
*/}}
{{- define "promoter-hook.configAnnotations" -}}
{{- if .Values.argocd }}
argocd.argoproj.io/sync-wave: {{ sub (int .Values.syncWave) 1 | quote }}
{{- else }}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-delete-policy: before-hook-creation
helm.sh/hook-weight: {{ sub (int .Values.syncWave) 1 | quote }}
{{- end }}
{{- end }}
