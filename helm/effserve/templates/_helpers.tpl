{{/* Chart name, at most 63 characters. */}}
{{- define "effserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object's name. Model objects append "-MODEL", so it is kept short enough for that. */}}
{{- define "effserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "effserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels. Call with (dict "root" $ "component" "gateway") and optionally "model". */}}
{{- define "effserve.labels" -}}
helm.sh/chart: {{ include "effserve.chart" .root }}
{{ include "effserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: effserve
{{- end -}}

{{- define "effserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "effserve.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .model }}
effserve.io/model: {{ .model }}
{{- end }}
{{- end -}}

{{/* Name of a model's objects (Deployment, headless Service, PDB, scaler, ConfigMap). */}}
{{- define "effserve.modelName" -}}
{{- printf "%s-%s" (include "effserve.fullname" .root) .model | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "effserve.gatewayName" -}}
{{- printf "%s-gateway" (include "effserve.fullname" .) -}}
{{- end -}}

{{- define "effserve.redisName" -}}
{{- printf "%s-redis" (include "effserve.fullname" .) -}}
{{- end -}}

{{- define "effserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "effserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An EffServe image reference: call with (dict "root" $ "name" "gateway"|"inference"|"inferenceGpu").
A value under the earlier `images.*` names wins over its `image.*` counterpart (existing values files keep working).
*/}}
{{- define "effserve.image" -}}
{{- $legacy := default (dict) .root.Values.images -}}
{{- $old := default (dict) (get $legacy .name) -}}
{{- $new := default (dict) (get .root.Values.image .name) -}}
{{- $repo := default $new.repository $old.repository -}}
{{- $registry := default .root.Values.image.registry $legacy.registry -}}
{{- if $registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}
{{- end -}}
{{- $tag := default $new.tag $old.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Pull policy of the chart's images (images.pullPolicy wins when set). */}}
{{- define "effserve.pullPolicy" -}}
{{- default .Values.image.pullPolicy (get (default (dict) .Values.images) "pullPolicy") -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec, indented for it, or nothing (images.pullSecrets wins when set). */}}
{{- define "effserve.pullSecrets" -}}
{{- with default .Values.imagePullSecrets (get (default (dict) .Values.images) "pullSecrets") -}}
imagePullSecrets:
{{ toYaml . | indent 2 }}
{{- end -}}
{{- end -}}

{{/*
A pod's labels: the standard ones and, before them, podLabels and the component's own (which cannot
replace the standard ones). Call with the labels context plus "extra" (the component's podLabels).
*/}}
{{- define "effserve.podLabels" -}}
{{- $standard := include "effserve.labels" . | fromYaml -}}
{{- $extra := merge (deepCopy (default (dict) .extra)) (default (dict) .root.Values.podLabels) -}}
{{- range $key, $_ := $standard -}}
{{- $_ := unset $extra $key -}}
{{- end -}}
{{- with $extra -}}
{{ toYaml . }}
{{ end -}}
{{ include "effserve.labels" . }}
{{- end -}}

{{/* A pod's annotations beyond the config checksum: the top-level podAnnotations and the component's (which win). */}}
{{- define "effserve.podAnnotations" -}}
{{- with merge (deepCopy (default (dict) .extra)) (default (dict) .root.Values.podAnnotations) -}}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* topologySpreadConstraints, each without a labelSelector given the pods' selector labels. Call with the labels context plus "constraints". */}}
{{- define "effserve.topologySpread" -}}
{{- $selector := include "effserve.selectorLabels" . | fromYaml -}}
{{- $result := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- $result = append $result $c -}}
{{- end -}}
{{- toYaml $result -}}
{{- end -}}

{{/* A probe from values, its gRPC check (if any) pointed at ports.grpc. Call with (dict "root" $ "probe" PROBE). */}}
{{- define "effserve.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if hasKey $probe "grpc" -}}
{{- $_ := set $probe "grpc" (merge (dict "port" (int .root.Values.ports.grpc)) (omit $probe.grpc "port")) -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end -}}

{{/* Where the model's replicas are, as the gateway resolves them: the headless Service's DNS name and port. */}}
{{- define "effserve.modelDnsName" -}}
{{- printf "%s.%s.svc.%s:%d" (include "effserve.modelName" .) .root.Release.Namespace .root.Values.clusterDomain (int .root.Values.ports.grpc) -}}
{{- end -}}

{{/* Name of the Secret holding the Redis connection string, empty when Redis is not configured. */}}
{{- define "effserve.redisSecret" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if or .Values.redis.connectionString .Values.redis.inChart.enabled -}}
{{- printf "%s-redis-connection" (include "effserve.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every EffServe container. */}}
{{- define "effserve.commonEnv" -}}
- name: DOTNET_ENVIRONMENT
  value: Production
- name: ASPNETCORE_ENVIRONMENT
  value: Production
{{- if .Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.telemetry.otlpEndpoint | quote }}
{{- if .Values.telemetry.otlpMetrics }}
- name: OTEL_METRICS_EXPORTER
  value: "prometheus,otlp"
{{- end }}
{{- end }}
{{- end -}}

{{/* The telemetry section both services read. */}}
{{- define "effserve.telemetryConfig" -}}
{{- dict "Enabled" .Values.telemetry.enabled "MetricsUrl" (printf "http://0.0.0.0:%d" (int .Values.ports.metrics)) "TraceSampleRatio" .Values.telemetry.traceSampleRatio | toJson -}}
{{- end -}}

{{/* A model's settings: modelDefaults overridden by the model's entry. Call with (dict "root" $ "model" NAME); returns JSON. */}}
{{- define "effserve.modelValues" -}}
{{- $entry := index .root.Values.models .model | default (dict) -}}
{{- mergeOverwrite (deepCopy .root.Values.modelDefaults) (deepCopy $entry) | toJson -}}
{{- end -}}

{{/*
Checks that the schema cannot express; each failure says what to change.
*/}}
{{- define "effserve.validate" -}}
{{- if not .Values.models -}}
{{- fail "values: models is empty; add at least one model (models.NAME.zoo.path is required)." -}}
{{- end -}}
{{- range $name, $_ := .Values.models -}}
{{- $m := include "effserve.modelValues" (dict "root" $ "model" $name) | fromJson -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "values: models.%s: a model's key must be a DNS label (lower-case letters, digits and '-'), since it names Kubernetes objects." $name) -}}
{{- end -}}
{{- if not (get (default (dict) $m.zoo) "path") -}}
{{- fail (printf "values: models.%s has no zoo path; set models.%s.zoo.path to the zoo folder inside the container (the images bake the demo zoo into /app/zoo, or mount one with models.%s.zoo.volume)." $name $name $name) -}}
{{- end -}}
{{- if not (hasPrefix "/" $m.zoo.path) -}}
{{- fail (printf "values: models.%s.zoo.path is %q; use an absolute path inside the container." $name $m.zoo.path) -}}
{{- end -}}
{{- $pool := default "cpu" $m.pool -}}
{{- if and (eq $pool "gpu") (not $.Values.pools.gpu.enabled) -}}
{{- fail (printf "values: models.%s runs on the gpu pool but there is no GPU pool: set pools.gpu.enabled=true and pools.gpu.nodeSelector to your GPU nodes' labels, or set models.%s.pool=cpu." $name $name) -}}
{{- end -}}
{{- if and (eq $pool "gpu") (lt (int (default 0 $m.gpus)) 1) -}}
{{- fail (printf "values: models.%s runs on the gpu pool with gpus=%v; ask for at least one GPU (models.%s.gpus=1)." $name (default 0 $m.gpus) $name) -}}
{{- end -}}
{{- if and (eq $pool "cpu") (gt (int (default 0 $m.gpus)) 0) -}}
{{- fail (printf "values: models.%s asks for %v GPUs on the cpu pool; set models.%s.pool=gpu (with pools.gpu.enabled=true) or gpus=0." $name $m.gpus $name) -}}
{{- end -}}
{{- if and $.Values.autoscaling.enabled $m.autoscaling -}}
{{- if lt (int $m.autoscaling.maxReplicas) (int $m.autoscaling.minReplicas) -}}
{{- fail (printf "values: models.%s.autoscaling.maxReplicas (%v) is below minReplicas (%v)." $name $m.autoscaling.maxReplicas $m.autoscaling.minReplicas) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.pools.gpu.enabled (not .Values.pools.gpu.nodeSelector) -}}
{{- fail "values: pools.gpu.enabled is true but pools.gpu.nodeSelector is empty; set it to a label only your GPU nodes carry (e.g. nvidia.com/gpu.present: \"true\")." -}}
{{- end -}}
{{- if and .Values.gateway.auth.jwt.enabled (not .Values.gateway.auth.existingSecret) (lt (len .Values.gateway.auth.jwt.signingKey) 32) -}}
{{- fail "values: gateway.auth.jwt.enabled is true but gateway.auth.jwt.signingKey is shorter than 32 bytes; set a longer key or use gateway.auth.existingSecret." -}}
{{- end -}}
{{- range $key, $tenant := .Values.gateway.auth.apiKeys -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $key) -}}
{{- fail (printf "values: gateway.auth.apiKeys has a key with characters other than letters, digits, '-', '_' and '.'; such keys cannot be Secret keys (use gateway.auth.existingSecret)." ) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.redis.inChart.enabled (or .Values.redis.connectionString .Values.redis.existingSecret) -}}
{{- fail "values: redis.inChart.enabled is true and an external Redis is configured too; choose one." -}}
{{- end -}}
{{- end -}}
