/**
 * The OpenTelemetry SDK, which the daemons import only when OTEL_* turns tracing on (libs/monitoring initTracing): in its own
 * file beside theirs, an untraced agent neither holds nor parses its source (-4.8 MiB of idle RSS, tools/bench idle memory).
 */
export const TRACING_BUNDLE = 'virtbus-tracing.mjs';
