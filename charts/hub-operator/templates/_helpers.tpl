{{/* Names, labels and the image reference shared by every template. */}}

{{- define "hub-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hub-operator.fullname" -}}
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

{{/* Cluster-scoped objects are shared by every release of the cluster: the namespace keeps two apart. */}}
{{- define "hub-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "hub-operator.fullname" .) }}
{{- end }}

{{- define "hub-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hub-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hub-operator.labels" -}}
{{ include "hub-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: hub-sante
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "hub-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hub-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount as the subject of its (Cluster)RoleBindings. */}}
{{- define "hub-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "hub-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The one image reference: the operator container and HUB_OPERATOR_DISPATCHER_IMAGE both use it. */}}
{{- define "hub-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Labels of the dispatcher pods the operator creates (hub_operator.builders.workloads). */}}
{{- define "hub-operator.dispatcherSelector" -}}
app.kubernetes.io/name: hub-dispatcher
app.kubernetes.io/managed-by: hub-operator
{{- end }}

{{/* Namespaces whose dispatchers get a NetworkPolicy. */}}
{{- define "hub-operator.dispatcherNamespaces" -}}
{{- toJson (default .Values.watchNamespaces .Values.networkPolicy.dispatcherNamespaces) }}
{{- end }}

{{/*
Checks across several values, which values.schema.json cannot express. deployment.yaml (always rendered)
includes this, so `helm template`, `helm install` and `helm upgrade` all stop with the message.
*/}}
{{- define "hub-operator.validate" -}}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail (printf "metrics.port and health.port must differ (both %d)" (int .Values.metrics.port)) }}
{{- end }}
{{- if and .Values.broker.create (not .Values.watchNamespaces) }}
{{- fail "broker.create needs watchNamespaces: the broker Secret is read in each hub environment's namespace, and the chart cannot create it in every namespace of the cluster (create it with your secret manager, or list the namespaces)" }}
{{- end }}
{{- end }}
