{{/*
Names and labels.
*/}}
{{- define "imagebind.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imagebind.fullname" -}}
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

{{- define "imagebind.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "imagebind.labels" -}}
helm.sh/chart: {{ include "imagebind.chart" . }}
{{ include "imagebind.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: imagebind-llm
{{- end }}

{{- define "imagebind.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagebind.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* (dict "root" $ "component" "decoder") */}}
{{- define "imagebind.componentLabels" -}}
{{ include "imagebind.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "imagebind.componentSelectorLabels" -}}
{{ include "imagebind.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Object name of a component: <fullname>-<component>, also its headless Service. */}}
{{- define "imagebind.componentName" -}}
{{- printf "%s-%s" (include "imagebind.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imagebind.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imagebind.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The deployables. key: their block in values.yaml; models: "yes" (model repository mounted),
"seed" (only with retriever.seedFromModels) or "no"; gpuImage: has a GPU image variant; scaler:
the KEDA signal ("batcher" = ibllm_batcher_queue_depth, "bullmq" = the batch backlog, "" = none);
callers: components that call its gRPC port (NetworkPolicy).
*/}}
{{- define "imagebind.components" -}}
gateway: {key: gateway, models: "no", gpuImage: false, scaler: "", callers: [batch-worker]}
decoder: {key: decoder, models: "yes", gpuImage: true, scaler: batcher, callers: [gateway]}
encoder-vision: {key: encoderVision, models: "yes", gpuImage: true, scaler: batcher, callers: [gateway]}
encoder-audio: {key: encoderAudio, models: "yes", gpuImage: true, scaler: batcher, callers: [gateway]}
encoder-text: {key: encoderText, models: "yes", gpuImage: true, scaler: batcher, callers: [gateway]}
encoder-point: {key: encoderPoint, models: "yes", gpuImage: true, scaler: batcher, callers: [gateway]}
bind: {key: bind, models: "yes", gpuImage: false, scaler: batcher, callers: [gateway]}
retriever: {key: retriever, models: "seed", gpuImage: false, scaler: "", callers: [gateway, batch-worker]}
batch-worker: {key: batchWorker, models: "no", gpuImage: false, scaler: bullmq, callers: []}
{{- end }}

{{/* The pool a component runs on, as YAML: (dict "root" $ "component" name "svc" block). */}}
{{- define "imagebind.pool" -}}
{{- $pool := index .root.Values.pools .svc.pool }}
{{- if not $pool }}
{{- fail (printf "%s: pool %q is not defined under pools (defined: %s)" .component .svc.pool (keys .root.Values.pools | sortAlpha | join ", ")) }}
{{- end }}
{{- toYaml $pool }}
{{- end }}

{{/* GPUs per pod of a pool: false/0 → 0, true → 1, N → N. */}}
{{- define "imagebind.gpuCount" -}}
{{- $gpu := .gpu }}
{{- if kindIs "bool" $gpu }}
{{- ternary 1 0 $gpu }}
{{- else if $gpu }}
{{- $gpu | int }}
{{- else }}
{{- 0 }}
{{- end }}
{{- end }}

{{/* Image of a component: (dict "root" $ "svc" block "gpu" bool). */}}
{{- define "imagebind.image" -}}
{{- $tag := default .root.Chart.AppVersion .svc.image.tag }}
{{- if .gpu }}
{{- $tag = printf "%s%s" $tag .root.Values.image.gpuTagSuffix }}
{{- end }}
{{- printf "%s/%s:%s" .root.Values.image.registry .svc.image.repository $tag }}
{{- end }}

{{/* An env value as a string: YAML numbers arrive as float64, so whole numbers print without exponent. */}}
{{- define "imagebind.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ printf "%d" (int64 .) }}{{ else }}{{ toString . }}{{ end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* gRPC target of a component's headless Service: dns:/// makes grpc-js resolve every pod and round_robin. */}}
{{- define "imagebind.grpcTarget" -}}
{{- $svc := index .root.Values .key }}
{{- printf "dns:///%s.%s.svc.%s:%d" (include "imagebind.componentName" (dict "root" .root "component" .component)) .root.Release.Namespace .root.Values.clusterDomain (int $svc.grpcPort) }}
{{- end }}

{{/* Service name of this release's Qdrant, as the official chart names it (qdrant.fullname). */}}
{{- define "imagebind.qdrantFullname" -}}
{{- if .Values.qdrant.fullnameOverride }}
{{- .Values.qdrant.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "qdrant" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-qdrant" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "imagebind.qdrantUrl" -}}
{{- if .Values.retriever.qdrant.url }}
{{- .Values.retriever.qdrant.url }}
{{- else if .Values.qdrant.enabled }}
{{- printf "http://%s.%s.svc.%s:6333" (include "imagebind.qdrantFullname" .) .Release.Namespace .Values.clusterDomain }}
{{- else }}
{{- fail "retriever.driver=qdrant needs qdrant.enabled=true or retriever.qdrant.url" }}
{{- end }}
{{- end }}

{{/* Whether the release has a Redis (built-in or external): "true" or "". */}}
{{- define "imagebind.hasRedis" -}}
{{- if or .Values.redis.enabled .Values.redis.externalUrl .Values.redis.existingSecret.name }}true{{ end }}
{{- end }}

{{/* The Redis URL env entry: (dict "root" $ "name" "REDIS_URL"). */}}
{{- define "imagebind.redisEnv" -}}
{{- $r := .root.Values.redis -}}
- name: {{ .name }}
{{- if $r.enabled }}
  value: {{ printf "redis://%s-redis.%s.svc.%s:6379" (include "imagebind.fullname" .root) .root.Release.Namespace .root.Values.clusterDomain | quote }}
{{- else if $r.existingSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret.name }}
      key: {{ $r.existingSecret.key }}
{{- else }}
  value: {{ $r.externalUrl | quote }}
{{- end }}
{{- end }}

{{/*
Autoscaler of a component: "keda", "hpa" or "" — never both. (dict "root" $ "meta" meta "svc" block)
*/}}
{{- define "imagebind.autoscaler" -}}
{{- if and .root.Values.keda.enabled .meta.scaler .svc.keda.enabled }}keda
{{- else if .svc.autoscaling.enabled }}hpa
{{- end }}
{{- end }}

{{/* Pod annotations for Prometheus scraping on the HTTP port. */}}
{{- define "imagebind.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
