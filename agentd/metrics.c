/*
 * Prometheus metrics: requests by method, route pattern and status, a
 * latency histogram and the number of open connections. Route patterns
 * (not raw paths) keep the label set small and bounded.
 */
#include "agentd/daemon.h"

#include <string.h>

#define METRIC_SERIES 256

static const double latency_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])

typedef struct series {
	const char *method; /* static strings: route tables and literals */
	const char *route;
	int status;
	unsigned long long count;
} series;

struct agentd_metrics {
	pthread_mutex_t lock;
	series requests[METRIC_SERIES];
	int nseries;
	unsigned long long overflow; /* requests whose series did not fit */
	unsigned long long buckets[NBUCKETS];
	unsigned long long latency_count;
	double latency_sum;
	long open_connections;
};

int agentd_metrics_new(agentd_metrics **out)
{
	agentd_metrics *m = ag_calloc(1, sizeof *m);
	if (!m)
		return ag_error_set(AG_ENOMEM, "out of memory creating metrics");
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void agentd_metrics_free(agentd_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	ag_free(m);
}

static const char *static_method(const char *method)
{
	static const char *const known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(known[i], method) == 0)
			return known[i];
	return "OTHER";
}

void agentd_metrics_request(agentd_metrics *m, const char *method, const char *route, int status,
			    double seconds)
{
	method = static_method(method);
	pthread_mutex_lock(&m->lock);
	series *s = NULL;
	for (int i = 0; i < m->nseries; i++) {
		series *c = &m->requests[i];
		if (c->status == status && c->method == method && strcmp(c->route, route) == 0) {
			s = c;
			break;
		}
	}
	if (!s && m->nseries < METRIC_SERIES) {
		s = &m->requests[m->nseries++];
		s->method = method;
		s->route = route;
		s->status = status;
	}
	if (s)
		s->count++;
	else
		m->overflow++;
	for (size_t b = 0; b < NBUCKETS; b++)
		if (seconds <= latency_buckets[b])
			m->buckets[b]++;
	m->latency_count++;
	m->latency_sum += seconds;
	pthread_mutex_unlock(&m->lock);
}

void agentd_metrics_connection(agentd_metrics *m, int delta)
{
	pthread_mutex_lock(&m->lock);
	m->open_connections += delta;
	pthread_mutex_unlock(&m->lock);
}

int agentd_metrics_render(agentd_metrics *m, char **out, size_t *len)
{
	ag_buf b = AG_BUF_INIT;
	int rc = 0;
	pthread_mutex_lock(&m->lock);
	rc |= ag_buf_puts(&b, "# HELP agentd_http_requests_total HTTP requests by method, route and status.\n"
			      "# TYPE agentd_http_requests_total counter\n");
	for (int i = 0; i < m->nseries && !rc; i++) {
		series *s = &m->requests[i];
		rc |= ag_buf_printf(
			&b, "agentd_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
			s->method, s->route, s->status, s->count);
	}
	rc |= ag_buf_printf(&b,
			    "# HELP agentd_http_requests_unlabelled_total Requests beyond the label limit.\n"
			    "# TYPE agentd_http_requests_unlabelled_total counter\n"
			    "agentd_http_requests_unlabelled_total %llu\n",
			    m->overflow);
	rc |= ag_buf_puts(&b, "# HELP agentd_http_request_duration_seconds Time from request to response.\n"
			      "# TYPE agentd_http_request_duration_seconds histogram\n");
	for (size_t i = 0; i < NBUCKETS && !rc; i++)
		rc |= ag_buf_printf(&b, "agentd_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				    latency_buckets[i], m->buckets[i]);
	rc |= ag_buf_printf(&b,
			    "agentd_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
			    "agentd_http_request_duration_seconds_sum %.6f\n"
			    "agentd_http_request_duration_seconds_count %llu\n",
			    m->latency_count, m->latency_sum, m->latency_count);
	rc |= ag_buf_printf(&b,
			    "# HELP agentd_http_open_connections Connections open now.\n"
			    "# TYPE agentd_http_open_connections gauge\n"
			    "agentd_http_open_connections %ld\n",
			    m->open_connections);
	pthread_mutex_unlock(&m->lock);
	if (rc) {
		ag_buf_free(&b);
		return ag_error_set(AG_ENOMEM, "out of memory rendering metrics");
	}
	*out = ag_buf_detach(&b, len);
	return 0;
}
