{{/*
Names. Kubernetes names are at most 63 characters where they end up in DNS (Services) or
labels, so they are cut there.
*/}}
{{- define "storefactory.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "storefactory.fullname" -}}
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

{{- define "storefactory.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: the chart's appVersion unless overridden. */}}
{{- define "storefactory.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "storefactory.selectorLabels" -}}
app.kubernetes.io/name: {{ include "storefactory.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels of every object of the release. Stores' objects are labelled
app.kubernetes.io/managed-by=storefactory by the platform; the release's own are Helm's.
*/}}
{{- define "storefactory.labels" -}}
helm.sh/chart: {{ include "storefactory.chart" . }}
{{ include "storefactory.selectorLabels" . }}
app.kubernetes.io/version: {{ include "storefactory.version" . | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: storefactory
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "storefactory.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "storefactory.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Cluster-scoped RBAC objects are named after the release's namespace too, so that releases
of the same name in two namespaces do not take over each other's ClusterRole.
*/}}
{{- define "storefactory.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "storefactory.fullname" .) }}
{{- end }}

{{/* The Secret holding the token-signing key and the admin password. */}}
{{- define "storefactory.secretName" -}}
{{- .Values.auth.existingSecret | default (include "storefactory.fullname" .) }}
{{- end }}

{{- define "storefactory.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "storefactory.fullname" .)) }}
{{- end }}

{{/*
Rules of the ClusterRole: exactly the permissions `storefactory doctor` checks (derived
from the kinds the built-in blueprint renders), and nothing broader. A test removes each
rule, resource and verb in turn and checks that doctor or provisioning then fails.
*/}}
{{- define "storefactory.clusterRules" -}}
# Every store has a namespace of its own: applied (server-side apply: create, patch),
# watched, and deleted with the store.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [create, patch, get, list, watch, delete]
# Pods are observed through a watch: readiness and failure reasons (image pulls, crash
# loops). Suspending a store deletes the finished pods of its completed Jobs.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
# The objects the built-in blueprint creates inside store namespaces: applied (server-side
# apply: create, patch) and watched for readiness and drift. Reads come from the watches'
# caches, so there is no get.
- apiGroups: [""]
  resources: [limitranges, persistentvolumeclaims, resourcequotas, services]
  verbs: [create, patch, list, watch]
# ConfigMaps are also read by name when a store is changed: does the seeding Job run again?
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch, get, list, watch]
# A store's generated passwords: created once, and read by name only when its credentials
# are asked for. Never listed or watched, so no Secret is read in bulk.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, get]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [create, patch, list, watch]
# The seeding Job is also deleted when a failed store is retried, or a change runs it again.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, patch, list, watch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [create, patch, list, watch]
# `storefactory doctor` checks that the configured ingress and storage classes exist;
# growing a store's volume checks that its StorageClass allows expansion.
- apiGroups: [networking.k8s.io]
  resources: [ingressclasses]
  verbs: [list]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [list]
{{- with .Values.rbac.extraClusterRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Rules of a Role in the release's own namespace, for what the server does there only: the
leader Lease (read, created once, renewed), which elects the one replica that reconciles.
*/}}
{{- define "storefactory.namespacedRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}
