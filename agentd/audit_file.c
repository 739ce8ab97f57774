/*
 * Verifying an audit file outside the database: an export (`agentd audit
 * export`) or a retention archive. Each record line's hash is recomputed from
 * its fields (data re-serialised with sorted keys reproduces the stored
 * canonical text), consecutive records must link, an archive's "segment" line
 * gives the hash the first record links to, and every checkpoint line must
 * carry this log's signature over a record in the file with that hash. So an
 * archived segment stays checkable after its records left the database.
 */
#include "agentd/audit_internal.h"

#include <inttypes.h>
#include <string.h>

typedef struct file_state {
	const agentd_audit *a;
	agentd_audit_report *r;
	bool have_prev; /* prev is known (from a segment line or the record before) */
	uint8_t prev[32];
	int64_t last_seq; /* 0 before the first record */
	int64_t first_seq;
	/* Hashes of the records seen, by seq - first_seq, for checkpoint lines. */
	uint8_t (*hashes)[32];
	size_t nhashes, cap;
	agentd_audit_checkpoint *cps;
	size_t ncps, cpcap;
} file_state;

static int file_bad(agentd_audit_report *r, int64_t seq, int line, const char *what)
{
	r->ok = false;
	r->first_bad = seq;
	snprintf(r->reason, sizeof r->reason, "line %d (record %" PRId64 "): %s", line, seq, what);
	return 0;
}

static int hex32(const json_t *v, const char *key, uint8_t out[32])
{
	const char *s = json_string_value(json_object_get(v, key));
	return s && strlen(s) == 64 && ag_hex_decode(out, 32, s) == 0 ? 0 : -1;
}

static int take_record(file_state *fs, const json_t *v, int line)
{
	const char *tenant = json_string_value(json_object_get(v, "tenant"));
	const char *user = json_string_value(json_object_get(v, "user"));
	const char *kind = json_string_value(json_object_get(v, "kind"));
	json_t *run = json_object_get(v, "run_id"), *data = json_object_get(v, "data");
	json_t *seqv = json_object_get(v, "seq"), *tv = json_object_get(v, "time_ms"),
	       *sv = json_object_get(v, "step");
	uint8_t prev[32], hash[32];
	int64_t seq = json_is_integer(seqv) ? json_integer_value(seqv) : 0;
	if (!tenant || !user || !kind || !json_is_object(data) || !json_is_integer(seqv) ||
	    !json_is_integer(tv) || !json_is_integer(sv) || !(json_is_null(run) || json_is_string(run)) ||
	    hex32(v, "prev_hash", prev) || hex32(v, "hash", hash))
		return file_bad(fs->r, seq, line, "malformed record line");
	if (fs->last_seq && seq != fs->last_seq + 1)
		return file_bad(fs->r, fs->last_seq + 1, line, "records are not consecutive");
	if (fs->have_prev && memcmp(prev, fs->prev, 32) != 0)
		return file_bad(fs->r, seq, line, "does not link to the record before (prev_hash differs)");
	char *text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return ag_error_set(AG_ENOMEM, "out of memory");
	audit_fields f = {
		.seq = seq,
		.time_ms = json_integer_value(tv),
		.tenant = tenant,
		.tenant_len = json_string_length(json_object_get(v, "tenant")),
		.user = user,
		.user_len = json_string_length(json_object_get(v, "user")),
		.run_id = json_string_value(run),
		.run_id_len = json_is_string(run) ? json_string_length(run) : 0,
		.step = json_integer_value(sv),
		.kind = kind,
		.kind_len = json_string_length(json_object_get(v, "kind")),
		.data = text,
		.data_len = strlen(text),
		.prev_hash = prev,
	};
	uint8_t h[32];
	audit_hash_record(h, &f);
	ag_free(text);
	if (memcmp(h, hash, 32) != 0)
		return file_bad(fs->r, seq, line, "was changed (its hash does not match its contents)");
	if (fs->nhashes == fs->cap) {
		size_t nc = fs->cap ? fs->cap * 2 : 1024;
		uint8_t(*g)[32] = ag_realloc(fs->hashes, nc * sizeof *g);
		if (!g)
			return ag_error_set(AG_ENOMEM, "out of memory");
		fs->hashes = g;
		fs->cap = nc;
	}
	memcpy(fs->hashes[fs->nhashes++], h, 32);
	if (!fs->first_seq)
		fs->first_seq = seq;
	memcpy(fs->prev, h, 32);
	fs->have_prev = true;
	fs->last_seq = seq;
	fs->r->records++;
	fs->r->head_seq = seq;
	memcpy(fs->r->head_hash, h, 32);
	return 0;
}

static int take_line(file_state *fs, const json_t *v, int line)
{
	const char *type = json_string_value(json_object_get(v, "type"));
	if (!type)
		return file_bad(fs->r, fs->last_seq + 1, line, "line without a type");
	if (strcmp(type, "record") == 0)
		return take_record(fs, v, line);
	if (strcmp(type, "segment") == 0) {
		json_t *after = json_object_get(v, "after_seq");
		if (fs->last_seq || !json_is_integer(after) || hex32(v, "after_hash", fs->prev))
			return file_bad(fs->r, fs->last_seq + 1, line, "misplaced or malformed segment line");
		fs->have_prev = true;
		fs->last_seq = json_integer_value(after);
		fs->r->first_seq = fs->last_seq + 1;
		fs->first_seq = fs->last_seq + 1;
		return 0;
	}
	if (strcmp(type, "checkpoint") == 0) {
		if (fs->ncps == fs->cpcap) {
			size_t nc = fs->cpcap ? fs->cpcap * 2 : 16;
			agentd_audit_checkpoint *g = ag_realloc(fs->cps, nc * sizeof *g);
			if (!g)
				return ag_error_set(AG_ENOMEM, "out of memory");
			fs->cps = g;
			fs->cpcap = nc;
		}
		if (agentd_audit_checkpoint_parse(v, &fs->cps[fs->ncps]) != 0) {
			ag_error_clear();
			return file_bad(fs->r, fs->last_seq + 1, line, "malformed checkpoint line");
		}
		fs->ncps++;
		return 0;
	}
	return file_bad(fs->r, fs->last_seq + 1, line, "unknown line type");
}

/* Checkpoints are checked once every record is known: they may come after them (archives). */
static void check_checkpoints(file_state *fs)
{
	for (size_t i = 0; i < fs->ncps && fs->r->ok; i++) {
		const agentd_audit_checkpoint *c = &fs->cps[i];
		if (memcmp(c->public_key, fs->a->pk, 32) != 0 || !audit_checkpoint_valid(fs->a->pk, c)) {
			fs->r->ok = false;
			fs->r->first_bad = c->seq;
			snprintf(fs->r->reason, sizeof fs->r->reason,
				 "checkpoint at record %" PRId64 " is not signed by this log's key", c->seq);
		} else if (c->seq < fs->first_seq || c->seq > fs->last_seq || fs->nhashes == 0) {
			if (c->seq > fs->last_seq) {
				fs->r->ok = false;
				fs->r->first_bad = fs->last_seq + 1;
				snprintf(fs->r->reason, sizeof fs->r->reason,
					 "record %" PRId64 " is missing: the file ends at %" PRId64
					 " but a checkpoint names record %" PRId64,
					 fs->last_seq + 1, fs->last_seq, c->seq);
			}
		} else if (memcmp(fs->hashes[c->seq - fs->first_seq], c->hash, 32) != 0) {
			fs->r->ok = false;
			fs->r->first_bad = c->seq;
			snprintf(fs->r->reason, sizeof fs->r->reason,
				 "record %" PRId64 " differs from the one its signed checkpoint names",
				 c->seq);
		} else {
			fs->r->checkpoints++;
		}
	}
}

int agentd_audit_verify_file(const agentd_audit *a, const char *path, agentd_audit_report *report)
{
	memset(report, 0, sizeof *report);
	report->ok = true;
	char *text;
	size_t len;
	int rc = ag_read_file(path, (size_t)4 << 30, &text, &len);
	if (rc)
		return rc;
	file_state fs = {.a = a, .r = report};
	int line = 0;
	for (char *p = text; !rc && report->ok && p < text + len;) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
		line++;
		if (l > 0) {
			json_t *v;
			if (ag_json_parse(&v, p, l) != 0) {
				ag_error_clear();
				file_bad(report, fs.last_seq + 1, line, "not JSON");
			} else {
				rc = take_line(&fs, v, line);
				json_decref(v);
			}
		}
		p += l + 1;
	}
	if (!rc && report->ok)
		check_checkpoints(&fs);
	if (!rc && report->ok && fs.first_seq && !report->first_seq)
		report->first_seq = fs.first_seq;
	if (!rc && report->ok)
		snprintf(report->reason, sizeof report->reason, "ok");
	ag_free(text);
	ag_free(fs.hashes);
	ag_free(fs.cps);
	return rc;
}
