#include "common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric {
    struct metric *next;
    enum metric_kind kind;
    char *name;
    char *help;
    char *labels;
    double value;       /* counter / gauge */
    double sum;         /* histogram */
    unsigned long long count;
    size_t nbounds;
    double *bounds;
    unsigned long long *buckets; /* cumulative at render time, per-bucket while counting */
};

/* Registration order is kept so that a family's series render together under one HELP. */
static metric_t *metrics_head, *metrics_tail;

const double metrics_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                         5,      10};
const size_t metrics_latency_nbounds = sizeof(metrics_latency_bounds) / sizeof(double);

static metric_t *find(const char *name, const char *labels)
{
    for (metric_t *m = metrics_head; m != NULL; m = m->next) {
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels ? labels : "") == 0)
            return m;
    }
    return NULL;
}

static metric_t *create(enum metric_kind kind, const char *name, const char *help,
                        const char *labels)
{
    metric_t *m = find(name, labels);
    if (m != NULL)
        return m;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort(); /* start-up allocation: nothing sensible to do without it */
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = strdup(labels ? labels : "");
    if (!m->name || !m->help || !m->labels)
        abort();
    /* Insert after the last series of the same family, so a family renders contiguously. */
    metric_t *after = NULL;
    for (metric_t *it = metrics_head; it != NULL; it = it->next) {
        if (strcmp(it->name, name) == 0)
            after = it;
    }
    if (after == NULL) {
        if (metrics_tail)
            metrics_tail->next = m;
        else
            metrics_head = m;
        metrics_tail = m;
    } else {
        m->next = after->next;
        after->next = m;
        if (metrics_tail == after)
            metrics_tail = m;
    }
    return m;
}

metric_t *metrics_counter(const char *name, const char *help, const char *labels)
{
    return create(METRIC_COUNTER, name, help, labels);
}

metric_t *metrics_gauge(const char *name, const char *help, const char *labels)
{
    return create(METRIC_GAUGE, name, help, labels);
}

metric_t *metrics_histogram(const char *name, const char *help, const char *labels,
                            const double *bounds, size_t nbounds)
{
    metric_t *m = create(METRIC_HISTOGRAM, name, help, labels);
    if (m->bounds == NULL) {
        m->nbounds = nbounds;
        m->bounds = malloc(nbounds * sizeof(double));
        m->buckets = calloc(nbounds + 1, sizeof(unsigned long long));
        if (!m->bounds || !m->buckets)
            abort();
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
    }
    return m;
}

void metric_inc(metric_t *m)
{
    m->value += 1;
}

void metric_add(metric_t *m, double v)
{
    m->value += v;
}

void metric_set(metric_t *m, double v)
{
    m->value = v;
}

void metric_observe(metric_t *m, double v)
{
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    m->buckets[i]++;
    m->count++;
    m->sum += v;
}

double metric_value(const metric_t *m)
{
    return m->kind == METRIC_HISTOGRAM ? (double)m->count : m->value;
}

static int render_series(buf_t *out, const char *name, const char *suffix, const char *labels,
                         const char *extra, double v)
{
    const char *sep = (labels[0] && extra[0]) ? "," : "";
    if (labels[0] || extra[0])
        return buf_printf(out, "%s%s{%s%s%s} %.17g\n", name, suffix, labels, sep, extra, v);
    return buf_printf(out, "%s%s %.17g\n", name, suffix, v);
}

int metrics_render(buf_t *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const char *family = "";
    int rc = 0;
    for (metric_t *m = metrics_head; m != NULL && rc == 0; m = m->next) {
        if (strcmp(family, m->name) != 0) {
            family = m->name;
            rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                            types[m->kind]);
        }
        if (m->kind != METRIC_HISTOGRAM) {
            if (rc == 0)
                rc = render_series(out, m->name, "", m->labels, "", m->value);
            continue;
        }
        unsigned long long cumulative = 0;
        for (size_t i = 0; i <= m->nbounds && rc == 0; i++) {
            char le[48];
            cumulative += m->buckets[i];
            if (i < m->nbounds)
                snprintf(le, sizeof(le), "le=\"%g\"", m->bounds[i]);
            else
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            rc = render_series(out, m->name, "_bucket", m->labels, le, (double)cumulative);
        }
        if (rc == 0)
            rc = render_series(out, m->name, "_sum", m->labels, "", m->sum);
        if (rc == 0)
            rc = render_series(out, m->name, "_count", m->labels, "", (double)m->count);
    }
    return rc;
}

void metrics_reset(void)
{
    metric_t *m = metrics_head;
    while (m != NULL) {
        metric_t *next = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m->bounds);
        free(m->buckets);
        free(m);
        m = next;
    }
    metrics_head = metrics_tail = NULL;
}
