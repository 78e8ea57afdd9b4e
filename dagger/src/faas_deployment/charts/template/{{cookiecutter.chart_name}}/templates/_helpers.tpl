{{/*
Chart name, truncated to the 63 characters Kubernetes allows in a label value.
*/}}
{{- define "component.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects: the release name when it already
contains the chart name, "<release>-<chart>" otherwise (63 characters at most).
*/}}
{{- define "component.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "component.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never add a version here.
*/}}
{{- define "component.selectorLabels" -}}
app.kubernetes.io/name: {{ include "component.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels of every object (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
*/}}
{{- define "component.labels" -}}
helm.sh/chart: {{ include "component.chart" . }}
{{ include "component.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: faas
{{- end }}

{{/*
Name of the Secret the ExternalSecret writes and the Deployment reads (envFrom).
*/}}
{{- define "component.adminSecretName" -}}
{{- default (printf "%s-admin" (include "component.fullname" .)) .Values.externalSecret.targetName | trunc 63 | trimSuffix "-" }}
{{- end }}
