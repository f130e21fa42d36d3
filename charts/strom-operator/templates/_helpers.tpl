{{/* Chart name, overridable. */}}
{{- define "strom-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "strom-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "strom-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "strom-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select the operator pods. */}}
{{- define "strom-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strom-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The operator pods' labels as KEY=VALUE,... (--operator-pod-labels): the
brokers' NetworkPolicies let these pods reach the internal port.
*/}}
{{- define "strom-operator.podLabelsArg" -}}
{{- $pairs := list -}}
{{- range $key, $value := (include "strom-operator.selectorLabels" . | fromYaml) -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "strom-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "strom-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference. */}}
{{- define "strom-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Rules the schema cannot express across values; each failure names the values
and the fix. Included by the Deployment, so `helm template` and `helm install`
both stop on them.
*/}}
{{- define "strom-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without the Lease every replica would act on the same clusters. Set replicaCount=1 or enable leader election." (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (eq .Values.rbac.scope "namespace") (empty .Values.watchNamespaces) -}}
{{- fail "rbac.scope=namespace needs watchNamespaces: list the namespaces the operator manages (Roles are created in each), or use rbac.scope=cluster." -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does, and nothing more (operator/src):
- watches KafkaClusters and KafkaTopics, writes their status, puts its finalizer
  on KafkaTopics (a patch);
- server-side applies each cluster's ConfigMap, Services, StatefulSet,
  PodDisruptionBudget and NetworkPolicy (a patch that creates the object needs
  `create` too) and watches them; reads the StatefulSet; deletes the
  NetworkPolicy of a cluster that turns it off (spec.networkPolicy.enabled)
  and the external listener's Services of brokers gone (or of an external
  listener removed);
- lists a cluster's broker pods and deletes one at a time in a rolling restart;
- reads, creates and server-side applies each cluster's CA Secrets (cluster
  CA, clients CA) and broker certificate Secret, watches them, and replaces a
  CA Secret (update) when it renews or retires a CA;
- publishes Events (events.k8s.io; repeated ones are patched).
Garbage collection of a cluster's objects is Kubernetes' (owner references):
the operator never deletes them, nor touches PersistentVolumeClaims.
*/}}
{{- define "strom-operator.rules" -}}
- apiGroups: ["strom.dev"]
  resources: ["kafkaclusters", "kafkatopics", "kafkausers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["strom.dev"]
  resources: ["kafkatopics", "kafkausers"]
  verbs: ["patch"]
- apiGroups: ["strom.dev"]
  resources: ["kafkaclusters/status", "kafkatopics/status", "kafkausers/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion need this where the
# OwnerReferencesPermissionEnforcement admission plugin runs (e.g. OpenShift).
- apiGroups: ["strom.dev"]
  resources: ["kafkaclusters/finalizers", "kafkausers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "create", "patch"]
# Services: also delete, for the external listener's Services of brokers
# gone or of an external listener removed.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
# Cluster CAs and certificates (update: a CA renewal replaces its Secret);
# each KafkaUser's password or certificate Secret (list and watch: the
# operator follows the Secrets it owns).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
