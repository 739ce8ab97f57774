/*
 * What the audit log's files share among themselves (agentd/audit*.c only):
 * the key, the canonical record hash and the checkpoint signature message.
 */
#ifndef AGENTD_AUDIT_INTERNAL_H
#define AGENTD_AUDIT_INTERNAL_H

#include <sodium.h>

#include "agentd/audit.h"

struct agentd_audit {
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	int64_t checkpoint_every;
};

/* The fields of one stored record, borrowed from a statement or an event. */
typedef struct audit_fields {
	int64_t seq;
	int64_t time_ms;
	const char *tenant;
	size_t tenant_len;
	const char *user;
	size_t user_len;
	const char *run_id; /* NULL: none */
	size_t run_id_len;
	int64_t step;
	const char *kind;
	size_t kind_len;
	const char *data; /* canonical JSON text */
	size_t data_len;
	const uint8_t *prev_hash; /* 32 bytes */
} audit_fields;

void audit_hash_record(uint8_t out[32], const audit_fields *f);
/* Signs and checks checkpoints over (seq, hash, time_ms). */
void audit_sign_checkpoint(const agentd_audit *a, agentd_audit_checkpoint *cp);
bool audit_checkpoint_valid(const uint8_t pk[32], const agentd_audit_checkpoint *cp);
/* Inserts a checkpoint row (inside the caller's transaction). */
int audit_store_checkpoint(sqlite3 *db, const agentd_audit_checkpoint *cp);
/* The last link of the chain: the newest record, else the archive anchor, else seq 0 and zeros. */
int audit_chain_head(sqlite3 *db, int64_t *seq, uint8_t hash[32]);
/* The archive anchor, if any (*found false otherwise). */
int audit_anchor(sqlite3 *db, bool *found, int64_t *seq, uint8_t hash[32]);

/* The columns audit_record_json reads, in order. */
#define AUDIT_RECORD_COLUMNS "seq, time_ms, tenant, user, run_id, step, kind, data, prev_hash, hash"
/* A row selected with AUDIT_RECORD_COLUMNS as its JSON form. */
int audit_record_json(sqlite3_stmt *st, json_t **out);

#endif
