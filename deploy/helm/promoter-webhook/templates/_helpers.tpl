{{/* The chart's short name: the name label, and the default of the other names. */}}
{{- define "promoter-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 35 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the Deployment, Service, ConfigMap, PodDisruptionBudget and the webhook
configuration. At most 52 characters, so that the names made from it (-selfsigned, -ca, -tls) stay
within Kubernetes' 63.
*/}}
{{- define "promoter-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "promoter-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "promoter-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "promoter-webhook: serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* What selects the webhook's Pods (Deployment, Service, PodDisruptionBudget, anti-affinity). */}}
{{- define "promoter-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "promoter-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "promoter-webhook.labels" -}}
{{ include "promoter-webhook.selectorLabels" . }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The serving Certificate made with cert-manager (certManager.enabled). */}}
{{- define "promoter-webhook.certificateName" -}}
{{- printf "%s-tls" (include "promoter-webhook.fullname" .) }}
{{- end }}

{{/* The kubernetes.io/tls Secret the webhook serves with: cert-manager's, or tls.secretName. */}}
{{- define "promoter-webhook.tlsSecretName" -}}
{{- if and (not .Values.certManager.enabled) (not .Values.tls.secretName) (not .Values.tls.caBundle) }}
{{- fail "promoter-webhook: certManager.enabled is false and neither tls.secretName nor tls.caBundle is set; enable cert-manager, or give a kubernetes.io/tls Secret and the CA that signed it (see values.yaml for openssl commands)" }}
{{- end }}
{{- if .Values.certManager.enabled }}
{{- include "promoter-webhook.certificateName" . }}
{{- else }}
{{- required "promoter-webhook: tls.secretName is required when certManager.enabled is false: the name of a kubernetes.io/tls Secret in the release namespace for the webhook's Service (see values.yaml for openssl commands)" .Values.tls.secretName }}
{{- end }}
{{- end }}

{{/*
tls.caBundle as the API server wants it in clientConfig.caBundle: base64 of PEM certificates.
PEM given as is is encoded here; anything else that does not decode to a PEM certificate fails the
render, since the API server would refuse every connection to the webhook (with failurePolicy Fail:
every Pod in the matched namespaces).
*/}}
{{- define "promoter-webhook.caBundle" -}}
{{- $bundle := required "promoter-webhook: tls.caBundle is required when certManager.enabled is false: the CA certificate that signed tls.secretName's certificate, as PEM or base64 of PEM (see values.yaml for openssl commands)" .Values.tls.caBundle | trim }}
{{- if contains "-----BEGIN CERTIFICATE-----" $bundle }}
{{- $bundle | b64enc }}
{{- else if contains "-----BEGIN CERTIFICATE-----" (b64dec (nospace $bundle)) }}
{{- nospace $bundle }}
{{- else }}
{{- fail "promoter-webhook: tls.caBundle is neither PEM certificates nor base64 of them; give the CA's PEM file (tls.caBundle: |) or `base64 -w0 ca.crt`" }}
{{- end }}
{{- end }}

{{/*
Checks of the settings the webhook and the API server agree on, done once (from the Deployment):
the environment exists in promoter.yaml, and the API server waits longer for an answer
(webhook.timeoutSeconds) than the webhook's own deadline for a review (admission.deadlineSeconds,
default 8), else an on-demand copy would be cut off by the API server instead of answered.
*/}}
{{- define "promoter-webhook.checkConfig" -}}
{{- $environment := required "promoter-webhook: environment is required (the promoter.yaml environment whose registry the webhook guards, e.g. production; passed as --environment)" .Values.environment }}
{{- $text := required "promoter-webhook: config is required (the content of promoter.yaml: the webhook reads its environments and their registries from it)" .Values.config }}
{{- $config := fromYaml $text }}
{{- if hasKey $config "Error" }}
{{- fail (printf "promoter-webhook: config is not a YAML mapping (%s); set it to the content of promoter.yaml" (get $config "Error")) }}
{{- end }}
{{- $environments := get $config "environments" }}
{{- if not (kindIs "map" $environments) }}
{{- fail "promoter-webhook: config has no environments: mapping; set it to the content of promoter.yaml" }}
{{- end }}
{{- if not (hasKey $environments $environment) }}
{{- fail (printf "promoter-webhook: environment %q is not in config's environments (known: %s)" $environment (keys $environments | sortAlpha | join ", ")) }}
{{- end }}
{{- $settings := get $environments $environment }}
{{- $admission := dict }}
{{- if and (kindIs "map" $settings) (kindIs "map" (get $settings "admission")) }}
{{- $admission = get $settings "admission" }}
{{- end }}
{{- $deadline := 8.0 }}
{{- if hasKey $admission "deadlineSeconds" }}
{{- $deadline = float64 (get $admission "deadlineSeconds") }}
{{- end }}
{{- $timeout := .Values.webhook.timeoutSeconds }}
{{- if or (lt (float64 $timeout) 1.0) (gt (float64 $timeout) 30.0) (ne (float64 (int $timeout)) (float64 $timeout)) }}
{{- fail (printf "promoter-webhook: webhook.timeoutSeconds is %v; Kubernetes takes a whole number of seconds from 1 to 30" $timeout) }}
{{- end }}
{{- if le (float64 $timeout) $deadline }}
{{- fail (printf "promoter-webhook: webhook.timeoutSeconds (%v) must be above environments.%s.admission.deadlineSeconds in config (%v), or the API server gives up before the webhook answers; raise timeoutSeconds (at most 30) or lower deadlineSeconds" $timeout $environment $deadline) }}
{{- end }}
{{- end }}
