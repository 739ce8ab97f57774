/*
 * Weight layouts: the model's Q8_0 / Q4_0 matrices either as GGUF stores
 * them (row after row) or interleaved by 16 rows for the avx512vnni kernels
 * (core_internal.h describes ENGINE_LAYOUT_I16). Reading Q8_0 rows one by one
 * decodes at about half the machine's read bandwidth: each row is its own
 * short stream, and every block costs a permute to gather its 32 bytes and
 * broadcast its scale. Interleaved, one VPDPBUSD multiplies 4 columns of 16
 * rows by a token's 4 activations straight from memory, and a pass over a
 * matrix is one sequential stream.
 *
 * A group holds exactly the bytes of its 16 rows, so the rewrite is done in
 * place, group by group, in the model's private copy of the file: no second
 * copy of the weights, and expert views (base + e * rows * row_bytes) and
 * row-major tails stay where they were. The exact kernel sets only ever see
 * row-major weights: engine_set_kernels rewrites the matrices back before it
 * hands the model to them.
 */
#include <string.h>
#include <sys/mman.h>

#include "engine/core_internal.h"

/* Bytes of weights (not scales) per block: Q8_0 one per weight, Q4_0 two weights a byte. */
static size_t quant_bytes(uint32_t type) { return type == ENGINE_TYPE_Q8_0 ? 32 : 16; }

float engine_weight_block(const engine_weight *w, uint64_t r, size_t b, int out[32])
{
	bool q8 = w->type == ENGINE_TYPE_Q8_0;
	size_t bb = engine_type_block_bytes(w->type);
	if (r >= engine_weight_grouped(w)) {
		const uint8_t *p = w->data + r * w->row_bytes + b * bb;
		for (int j = 0; j < 16; j++) {
			if (q8) {
				out[j] = (int8_t)p[2 + j];
				out[j + 16] = (int8_t)p[18 + j];
			} else {
				out[j] = (p[2 + j] & 0xf) - 8;
				out[j + 16] = (p[2 + j] >> 4) - 8;
			}
		}
		return engine_fp16_to_f32(engine_rd16(p));
	}
	size_t i = (size_t)(r % 16);
	const uint8_t *g = w->data + (r - i) * w->row_bytes + b * 16 * bb, *q = g + 32;
	for (size_t k = 0; k < quant_bytes(w->type) / 4; k++)
		for (size_t j = 0; j < 4; j++) {
			uint8_t v = q[64 * k + 4 * i + j];
			if (q8) {
				out[4 * k + j] = (int)v - 128;
			} else {
				out[4 * k + j] = (v & 0xf) - 8;
				out[16 + 4 * k + j] = (v >> 4) - 8;
			}
		}
	return engine_fp16_to_f32(engine_rd16(g + 2 * i));
}

/* 16 row-major rows (rows) to one interleaved group (g), or back (!pack): a
 * transpose of 4-byte words, block by block. */
static void group_convert(uint32_t type, size_t nb, size_t row_bytes, uint8_t *rows, uint8_t *g, bool pack)
{
	size_t bb = engine_type_block_bytes(type), nw = quant_bytes(type) / 4;
	uint32_t flip = type == ENGINE_TYPE_Q8_0 ? 0x80808080u : 0; /* Q8_0 stored plus 128 */
	for (size_t b = 0; b < nb; b++) {
		uint8_t *gb = g + b * 16 * bb;
		for (size_t i = 0; i < 16; i++) {
			uint8_t *rb = rows + i * row_bytes + b * bb;
			uint32_t v;
			if (pack)
				memcpy(gb + 2 * i, rb, 2);
			else
				memcpy(rb, gb + 2 * i, 2);
			for (size_t k = 0; k < nw; k++) {
				uint8_t *gv = gb + 32 + 64 * k + 4 * i, *rv = rb + 2 + 4 * k;
				memcpy(&v, pack ? rv : gv, 4);
				v ^= flip;
				memcpy(pack ? gv : rv, &v, 4);
			}
		}
	}
}

void engine_weight_relayout(engine_weight *w, uint8_t *data, uint32_t layout, uint8_t *tmp)
{
	if (w->layout == layout)
		return;
	size_t nb = (size_t)w->cols / 32, group = 16 * w->row_bytes;
	uint64_t count = w->count ? w->count : 1; /* a matrix built by hand may leave it 0 */
	for (uint64_t e = 0; e < count; e++)
		for (uint64_t r = 0; r + 16 <= w->rows; r += 16) {
			uint8_t *p = data + (e * w->rows + r) * w->row_bytes;
			memcpy(tmp, p, group);
			if (layout == ENGINE_LAYOUT_I16)
				group_convert(w->type, nb, w->row_bytes, tmp, p, true);
			else
				group_convert(w->type, nb, w->row_bytes, p, tmp, false);
		}
	w->layout = layout;
}

/* The matrices the row products read: every layer's, and the output head. */
static size_t matrices(engine_model *m, engine_weight **out, size_t cap)
{
	size_t n = 0;
	for (uint32_t i = 0; i < m->cfg.n_layer; i++) {
		engine_layer *L = &m->layers[i];
		engine_weight *ws[] = {&L->ssm_in, &L->ssm_x,  &L->ssm_dt, &L->ssm_out, &L->wq,
				       &L->wk,     &L->wv,     &L->wo,     &L->gate,    &L->up,
				       &L->down,   &L->router, &L->gate_x, &L->up_x,    &L->down_x};
		for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
			if (n < cap)
				out[n++] = ws[k];
	}
	if (n < cap)
		out[n++] = &m->output;
	return n;
}

int engine_model_relayout(engine_model *m, uint32_t layout)
{
	if (!m->file || !m->layers)
		return 0;
	size_t cap = (size_t)m->cfg.n_layer * 15 + 1, max_row = 0;
	engine_weight **ws = ag_malloc(cap * sizeof(*ws));
	if (!ws)
		return ag_error_set(AG_ENOMEM, "model: out of memory");
	size_t n = matrices(m, ws, cap);
	for (size_t i = 0; i < n; i++) {
		bool q = ws[i]->data && (ws[i]->type == ENGINE_TYPE_Q8_0 || ws[i]->type == ENGINE_TYPE_Q4_0);
		if (!q || ws[i]->layout == layout)
			ws[i] = NULL;
		else if (ws[i]->row_bytes > max_row)
			max_row = ws[i]->row_bytes;
	}
	uint8_t *tmp = max_row ? ag_malloc(16 * max_row) : NULL;
	if (max_row && !tmp) {
		ag_free(ws);
		return ag_error_set(AG_ENOMEM, "model: out of memory");
	}
	/* the copy of the file is read-only but while its matrices are rewritten */
	if (max_row && mprotect(m->file, m->file_size, PROT_READ | PROT_WRITE)) {
		ag_free(tmp);
		ag_free(ws);
		return ag_error_set(AG_EIO, "model: cannot make the weights writable");
	}
	for (size_t i = 0; i < n; i++)
		if (ws[i]) {
			uint8_t *data = (uint8_t *)m->file + (ws[i]->data - (const uint8_t *)m->file);
			engine_weight_relayout(ws[i], data, layout, tmp);
		}
	if (max_row)
		mprotect(m->file, m->file_size, PROT_READ);
	/* tied embeddings: the token lookups read the same bytes */
	if (m->tok_embd.data == m->output.data)
		m->tok_embd.layout = m->output.layout;
	ag_free(tmp);
	ag_free(ws);
	return 0;
}
