{{/* The prefix of every object's name: "tapmon" for a release named tapmon. */}}
{{- define "tapmon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "tapmon" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-tapmon" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "tapmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tapmon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Labels of every object. `app.kubernetes.io/name: tapmon` is fixed: the ServiceMonitors the
operator publishes select its Service by it.
*/}}
{{- define "tapmon.labels" -}}
app.kubernetes.io/name: tapmon
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the operator's own objects (Deployment, Service, ...). */}}
{{- define "tapmon.operatorLabels" -}}
{{ include "tapmon.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* What selects the operator's pods. */}}
{{- define "tapmon.selectorLabels" -}}
app.kubernetes.io/name: tapmon
app.kubernetes.io/component: operator
{{- end -}}

{{/* The image, by digest when one is given. */}}
{{- define "tapmon.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The metrics port's scheme: HTTPS unless scrapes are open and no certificate is given. */}}
{{- define "tapmon.metricsScheme" -}}
{{- if or (eq .Values.metrics.auth "kubernetes") .Values.metrics.tlsSecretName -}}
HTTPS
{{- else -}}
HTTP
{{- end -}}
{{- end -}}
