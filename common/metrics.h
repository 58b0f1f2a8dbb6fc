/*
 * metrics: a process-wide Prometheus registry (text exposition format 0.0.4).
 *
 * Metrics are created once at start-up (or lazily, for a label value first seen at run time)
 * and live until metrics_reset(). Asking again for the same name and labels returns the same
 * metric, so a call site may look one up each time if it must; hot paths keep the pointer.
 * Updates are plain stores on the loop thread: no atomics, since each daemon is one loop.
 * Labels are given pre-rendered, e.g. `code="2xx",route="/api/agents/me"`.
 */
#ifndef EDGEGATE_METRICS_H
#define EDGEGATE_METRICS_H

#include <stddef.h>

#include "common/buf.h"

typedef struct metric metric_t;

metric_t *metrics_counter(const char *name, const char *help, const char *labels);
metric_t *metrics_gauge(const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (the +Inf bucket is implied); copied. */
metric_t *metrics_histogram(const char *name, const char *help, const char *labels,
                            const double *bounds, size_t nbounds);

void metric_inc(metric_t *m);
void metric_add(metric_t *m, double v);
void metric_set(metric_t *m, double v); /* gauges */
void metric_observe(metric_t *m, double v); /* histograms */
double metric_value(const metric_t *m); /* counter/gauge value, histogram count */

/* Latency buckets in seconds, 0.5 ms to 10 s, for request-duration histograms. */
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_nbounds;

int metrics_render(buf_t *out);
void metrics_reset(void); /* frees everything (tests, shutdown) */

#endif
