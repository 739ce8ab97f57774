/* Unit tests of the GGUF reader: every metadata type read back, and files that
 * are truncated at every byte, carry wrong counts, absurd shapes, overflowing
 * or misaligned offsets, unknown types or duplicates — each must give an error
 * (never a crash: run these under ASan). Also the half/bfloat16 conversions,
 * the identity hash and model-level refusals (missing or misshapen tensors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static const char *tmpdir(void)
{
	const char *d = getenv("TEST_TMPDIR");
	return d && *d ? d : "/tmp";
}

/* A small file with one of every metadata type and two tensors. */
static void small_file(uint8_t **out, size_t *len)
{
	engine_gguf_writer *w;
	assert_int_equal(engine_gguf_writer_new(&w), 0);
	uint8_t u8 = 200;
	int8_t i8 = -100;
	uint16_t u16 = 60000;
	int16_t i16 = -30000;
	uint32_t u32 = 4000000000u;
	int32_t i32 = -2000000000;
	float f32 = 1.5f;
	uint8_t b = 1;
	uint64_t u64 = 18000000000000000000ull;
	int64_t i64 = -9000000000000000000ll;
	double f64 = -2.25;
	assert_int_equal(engine_gguf_writer_kv(w, "t.u8", ENGINE_GGUF_U8, &u8), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.i8", ENGINE_GGUF_I8, &i8), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.u16", ENGINE_GGUF_U16, &u16), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.i16", ENGINE_GGUF_I16, &i16), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.u32", ENGINE_GGUF_U32, &u32), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.i32", ENGINE_GGUF_I32, &i32), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.f32", ENGINE_GGUF_F32, &f32), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.bool", ENGINE_GGUF_BOOL, &b), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.u64", ENGINE_GGUF_U64, &u64), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.i64", ENGINE_GGUF_I64, &i64), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "t.f64", ENGINE_GGUF_F64, &f64), 0);
	assert_int_equal(engine_gguf_writer_kv_str(w, "t.str", "hello"), 0);
	int32_t arr[3] = {0, 4, -1};
	assert_int_equal(engine_gguf_writer_kv_array(w, "t.arr", ENGINE_GGUF_I32, arr, 3), 0);
	const char *strs[] = {"a", "", "ccc"};
	assert_int_equal(engine_gguf_writer_kv_str_array(w, "t.strs", strs, 3), 0);
	float v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (float)i - 31.5f;
	uint64_t ne1[2] = {32, 2}, ne2[1] = {5};
	assert_int_equal(engine_gguf_writer_tensor(w, "w.q8", ENGINE_TYPE_Q8_0, 2, ne1, v), 0);
	assert_int_equal(engine_gguf_writer_tensor(w, "w.f32", ENGINE_TYPE_F32, 1, ne2, v), 0);
	assert_int_equal(engine_gguf_writer_bytes(w, out, len), 0);
	engine_gguf_writer_free(w);
}

static void test_every_metadata_type(void **state)
{
	(void)state;
	uint8_t *bytes;
	size_t len;
	small_file(&bytes, &len);
	engine_gguf *g;
	assert_int_equal(engine_gguf_open_memory(&g, bytes, len), 0);
	assert_int_equal(engine_gguf_version(g), 3);
	assert_int_equal(engine_gguf_alignment(g), 32);
	assert_int_equal(engine_gguf_n_kv(g), 14);
	assert_int_equal(engine_gguf_n_tensors(g), 2);
	uint64_t u;
	int64_t i;
	double d;
	bool b;
	assert_int_equal(engine_gguf_get_u64(g, "t.u8", &u), 0);
	assert_int_equal(u, 200);
	assert_int_equal(engine_gguf_get_i64(g, "t.i8", &i), 0);
	assert_int_equal(i, -100);
	assert_int_equal(engine_gguf_get_u64(g, "t.u16", &u), 0);
	assert_int_equal(u, 60000);
	assert_int_equal(engine_gguf_get_i64(g, "t.i16", &i), 0);
	assert_int_equal(i, -30000);
	assert_int_equal(engine_gguf_get_u64(g, "t.u32", &u), 0);
	assert_int_equal(u, 4000000000u);
	assert_int_equal(engine_gguf_get_i64(g, "t.i32", &i), 0);
	assert_int_equal(i, -2000000000);
	assert_int_equal(engine_gguf_get_f64(g, "t.f32", &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(engine_gguf_get_bool(g, "t.bool", &b), 0);
	assert_true(b);
	assert_int_equal(engine_gguf_get_u64(g, "t.u64", &u), 0);
	assert_true(u == 18000000000000000000ull);
	assert_int_equal(engine_gguf_get_i64(g, "t.u64", &i), AG_EINVAL); /* does not fit */
	assert_int_equal(engine_gguf_get_i64(g, "t.i64", &i), 0);
	assert_true(i == -9000000000000000000ll);
	assert_int_equal(engine_gguf_get_u64(g, "t.i64", &u), AG_EINVAL); /* negative */
	assert_int_equal(engine_gguf_get_f64(g, "t.f64", &d), 0);
	assert_true(d == -2.25);
	assert_int_equal(engine_gguf_get_f64(g, "t.i32", &d), 0);
	assert_true(d == -2000000000.0);
	const char *s;
	size_t n;
	assert_int_equal(engine_gguf_get_str(g, "t.str", &s, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(s, "hello", 5);
	assert_int_equal(engine_gguf_get_str(g, "t.u8", &s, &n), AG_EINVAL);
	assert_int_equal(engine_gguf_get_bool(g, "t.u8", &b), AG_EINVAL);
	assert_int_equal(engine_gguf_get_u64(g, "t.str", &u), AG_EINVAL);
	assert_int_equal(engine_gguf_get_u64(g, "t.missing", &u), AG_ENOTFOUND);
	int et;
	uint64_t cnt;
	assert_int_equal(engine_gguf_get_array(g, "t.arr", &et, &cnt), 0);
	assert_int_equal(et, ENGINE_GGUF_I32);
	assert_int_equal(cnt, 3);
	assert_int_equal(engine_gguf_array_i64(g, "t.arr", 2, &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(engine_gguf_array_i64(g, "t.arr", 3, &i), AG_EINVAL);
	assert_int_equal(engine_gguf_array_str(g, "t.arr", 0, &s, &n), AG_EINVAL);
	assert_int_equal(engine_gguf_get_array(g, "t.strs", &et, &cnt), 0);
	assert_int_equal(et, ENGINE_GGUF_STRING);
	assert_int_equal(engine_gguf_array_str(g, "t.strs", 1, &s, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(engine_gguf_array_str(g, "t.strs", 2, &s, &n), 0);
	assert_memory_equal(s, "ccc", 3);
	assert_int_equal(engine_gguf_array_i64(g, "t.strs", 0, &i), AG_EINVAL);
	assert_string_equal(engine_gguf_kv_key(g, 0), "t.u8");
	assert_int_equal(engine_gguf_kv_type(g, 13), ENGINE_GGUF_ARRAY);
	assert_null(engine_gguf_kv_key(g, 14));
	const engine_gguf_tensor *t = engine_gguf_find_tensor(g, "w.q8");
	assert_non_null(t);
	assert_int_equal(t->type, ENGINE_TYPE_Q8_0);
	assert_int_equal(t->ne[0], 32);
	assert_int_equal(t->ne[1], 2);
	assert_int_equal(t->n_bytes, 68);
	assert_int_equal(t->offset % 32, 0);
	t = engine_gguf_find_tensor(g, "w.f32");
	assert_non_null(t);
	assert_true(((const float *)t->data)[4] == -27.5f);
	assert_null(engine_gguf_find_tensor(g, "w.none"));
	engine_gguf_free(g);
	ag_free(bytes);
}

static void expect_corrupt(const uint8_t *bytes, size_t len, const char *why)
{
	engine_gguf *g = (engine_gguf *)1;
	int rc = engine_gguf_open_memory(&g, bytes, len);
	if (rc == 0)
		fail_msg("accepted a bad file: %s", why);
	assert_null(g);
	assert_true(strlen(ag_error_last()) > 0);
}

static void test_truncated_at_every_byte(void **state)
{
	(void)state;
	uint8_t *bytes;
	size_t len;
	small_file(&bytes, &len);
	for (size_t cut = 0; cut < len; cut++) {
		/* a copy of exactly cut bytes, so ASan sees any read past it */
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, bytes, cut);
		expect_corrupt(copy, cut, "truncated");
		free(copy);
	}
	ag_free(bytes);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Offset of the tensor info of name (its u64 length field). */
static size_t info_of(const uint8_t *b, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 8; i + n <= len; i++)
		if (!memcmp(b + i, name, n) && b[i - 8] == n)
			return i - 8;
	fail_msg("no tensor info %s", name);
	return 0;
}

static void test_wrong_counts_and_header(void **state)
{
	(void)state;
	uint8_t *orig;
	size_t len;
	small_file(&orig, &len);
	uint8_t *b = malloc(len);
	struct {
		size_t at;
		int width;
		uint64_t v;
		const char *why;
	} patches[] = {
		{0, 4, 0x46554748, "bad magic"},
		{4, 4, 1, "version 1"},
		{4, 4, 4, "version 4"},
		{4, 4, 0x03000000, "big-endian version 3"},
		{8, 8, 3, "one tensor too many"},
		{8, 8, 1ull << 60, "absurd tensor count"},
		{16, 8, 15, "one key too many"},
		{16, 8, UINT64_MAX, "absurd key count"},
		{24, 8, 1ull << 62, "key length past the end"},
		{24, 8, 0, "empty key"},
		{24 + 8 + 4, 4, 13, "unknown value type"},
		{24 + 8 + 4, 4, ENGINE_GGUF_ARRAY, "u8 read as an array"},
	};
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		memcpy(b, orig, len);
		if (patches[i].width == 4)
			put32(b + patches[i].at, (uint32_t)patches[i].v);
		else
			put64(b + patches[i].at, patches[i].v);
		expect_corrupt(b, len, patches[i].why);
	}
	/* the bool value 2 */
	memcpy(b, orig, len);
	size_t kb = 0;
	for (size_t i = 0; i + 6 < len; i++)
		if (!memcmp(b + i, "t.bool", 6)) {
			kb = i + 6 + 4;
			break;
		}
	assert_true(kb > 0);
	b[kb] = 2;
	expect_corrupt(b, len, "bool 2");
	/* an array count beyond the file */
	memcpy(b, orig, len);
	for (size_t i = 0; i + 5 < len; i++)
		if (!memcmp(b + i, "t.arr", 5)) {
			put64(b + i + 5 + 4 + 4, 1ull << 40);
			break;
		}
	expect_corrupt(b, len, "array count");
	/* a string array count beyond the file */
	memcpy(b, orig, len);
	for (size_t i = 0; i + 6 < len; i++)
		if (!memcmp(b + i, "t.strs", 6)) {
			put64(b + i + 6 + 4 + 4, 1ull << 58);
			break;
		}
	expect_corrupt(b, len, "string array count");
	/* duplicate key */
	memcpy(b, orig, len);
	for (size_t i = 0; i + 4 < len; i++)
		if (!memcmp(b + i, "t.i8", 4)) {
			memcpy(b + i, "t.u8", 4);
			break;
		}
	expect_corrupt(b, len, "duplicate key");
	free(b);
	ag_free(orig);
}

static void test_absurd_tensor_infos(void **state)
{
	(void)state;
	uint8_t *orig;
	size_t len;
	small_file(&orig, &len);
	uint8_t *b = malloc(len);
	size_t q = info_of(orig, len, "w.q8"), f = info_of(orig, len, "w.f32");
	size_t qd = q + 8 + 4, qne = qd + 4, qtype = qne + 16, qoff = qtype + 4;
	size_t fne = f + 8 + 5 + 4, ftype = fne + 8, foff = ftype + 4;
	struct {
		size_t at;
		int width;
		uint64_t v;
		const char *why;
	} patches[] = {
		{qd, 4, 0, "zero dims"},
		{qd, 4, 5, "five dims"},
		{qne, 8, 0, "zero extent"},
		{qne, 8, 1ull << 62, "absurd extent"},
		{qne + 8, 8, 1ull << 40, "huge second extent"},
		{qne, 8, 33, "row not a multiple of the block"},
		{qtype, 4, 99, "unknown type"},
		{qtype, 4, 4, "removed type 4"},
		{qoff, 8, 16, "misaligned offset"},
		{qoff, 8, 1ull << 40, "offset past the end"},
		{qoff, 8, UINT64_MAX - 31, "offset overflow"},
		{foff, 8, 128, "data past the end"},
		{fne, 8, 1000, "size past the end"},
		{ftype, 4, ENGINE_TYPE_F16 + 0, "type changes the size (still fits)"},
		{q, 8, 0, "empty name"},
		{q, 8, 100, "name runs into the next field"},
	};
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		memcpy(b, orig, len);
		if (patches[i].width == 4)
			put32(b + patches[i].at, (uint32_t)patches[i].v);
		else
			put64(b + patches[i].at, patches[i].v);
		engine_gguf *g;
		int rc = engine_gguf_open_memory(&g, b, len);
		if (i == 13) { /* F16 of 5 values is smaller: a consistent file */
			assert_int_equal(rc, 0);
			assert_int_equal(engine_gguf_find_tensor(g, "w.f32")->n_bytes, 10);
			engine_gguf_free(g);
			continue;
		}
		if (rc == 0)
			fail_msg("accepted: %s", patches[i].why);
	}
	/* duplicate tensor names */
	memcpy(b, orig, len);
	memcpy(b + f + 8, "w.q8", 4);
	put64(b + f, 4);
	expect_corrupt(b, len, "duplicate tensor"); /* also shifts the fields: still an error */
	/* the alignment key must be a power-of-two u32 */
	engine_gguf_writer *w;
	uint8_t *bytes;
	size_t n;
	uint32_t al = 24;
	assert_int_equal(engine_gguf_writer_new(&w), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "general.alignment", ENGINE_GGUF_U32, &al), 0);
	assert_int_equal(engine_gguf_writer_bytes(w, &bytes, &n), 0);
	expect_corrupt(bytes, n, "alignment 24");
	ag_free(bytes);
	engine_gguf_writer_free(w);
	uint64_t al64 = 32;
	assert_int_equal(engine_gguf_writer_new(&w), 0);
	assert_int_equal(engine_gguf_writer_kv(w, "general.alignment", ENGINE_GGUF_U64, &al64), 0);
	assert_int_equal(engine_gguf_writer_bytes(w, &bytes, &n), 0);
	expect_corrupt(bytes, n, "alignment not u32");
	ag_free(bytes);
	engine_gguf_writer_free(w);
	/* an empty but valid file */
	assert_int_equal(engine_gguf_writer_new(&w), 0);
	assert_int_equal(engine_gguf_writer_bytes(w, &bytes, &n), 0);
	engine_gguf *g;
	assert_int_equal(engine_gguf_open_memory(&g, bytes, n), 0);
	assert_int_equal(engine_gguf_n_tensors(g), 0);
	engine_gguf_free(g);
	ag_free(bytes);
	engine_gguf_writer_free(w);
	free(b);
	ag_free(orig);
}

static void test_nested_array(void **state)
{
	(void)state;
	/* header, one key "n" = array of 2 arrays of u8 {1}, {2, 3} */
	uint8_t b[128] = {'G', 'G', 'U', 'F', 3};
	size_t p = 8;
	put64(b + p, 0), p += 8;
	put64(b + p, 1), p += 8;
	put64(b + p, 1), p += 8;
	b[p++] = 'n';
	put32(b + p, ENGINE_GGUF_ARRAY), p += 4;
	put32(b + p, ENGINE_GGUF_ARRAY), p += 4;
	put64(b + p, 2), p += 8;
	put32(b + p, ENGINE_GGUF_U8), p += 4;
	put64(b + p, 1), p += 8;
	b[p++] = 1;
	put32(b + p, ENGINE_GGUF_U8), p += 4;
	put64(b + p, 2), p += 8;
	b[p++] = 2;
	b[p++] = 3;
	engine_gguf *g;
	assert_int_equal(engine_gguf_open_memory(&g, b, p), 0);
	int et;
	uint64_t cnt;
	assert_int_equal(engine_gguf_get_array(g, "n", &et, &cnt), 0);
	assert_int_equal(et, ENGINE_GGUF_ARRAY);
	assert_int_equal(cnt, 2);
	int64_t v;
	assert_int_equal(engine_gguf_array_i64(g, "n", 0, &v), AG_EINVAL);
	engine_gguf_free(g);
	for (size_t cut = 0; cut < p; cut++)
		expect_corrupt(b, cut, "nested truncated");
}

/* Many keys: duplicates are found by sorting, so a hostile file cannot make the
 * reader quadratic; lookups stay exact. */
static void test_many_keys(void **state)
{
	(void)state;
	engine_gguf_writer *w;
	assert_int_equal(engine_gguf_writer_new(&w), 0);
	enum { N = 60000 };
	char key[32];
	for (uint32_t i = 0; i < N; i++) {
		snprintf(key, sizeof key, "k.%u", i * 7919u % 1000003u);
		assert_int_equal(engine_gguf_writer_kv(w, key, ENGINE_GGUF_U32, &i), 0);
	}
	uint8_t *bytes;
	size_t len;
	assert_int_equal(engine_gguf_writer_bytes(w, &bytes, &len), 0);
	engine_gguf *g;
	int64_t t0 = ag_monotonic_ns();
	assert_int_equal(engine_gguf_open_memory(&g, bytes, len), 0);
	assert_true(ag_monotonic_ns() - t0 < 2000000000LL);
	uint64_t v;
	snprintf(key, sizeof key, "k.%u", 12345u * 7919u % 1000003u);
	assert_int_equal(engine_gguf_get_u64(g, key, &v), 0);
	assert_int_equal(v, 12345);
	engine_gguf_free(g);
	/* the last key renamed to the first: a duplicate far apart */
	size_t a = 24 + 8;
	size_t klen = bytes[24];
	char first[32];
	memcpy(first, bytes + a, klen);
	first[klen] = 0;
	ag_free(bytes);
	snprintf(key, sizeof key, "%s", first);
	uint32_t x = 1;
	assert_int_equal(engine_gguf_writer_kv(w, key, ENGINE_GGUF_U32, &x), 0);
	assert_int_equal(engine_gguf_writer_bytes(w, &bytes, &len), 0);
	expect_corrupt(bytes, len, "duplicate among many");
	assert_non_null(strstr(ag_error_last(), "duplicate key"));
	ag_free(bytes);
	engine_gguf_writer_free(w);
}

static void test_half_conversions(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = engine_fp16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		assert_int_equal(engine_f32_to_fp16(f), h);
		assert_int_equal(engine_f32_to_bf16(engine_bf16_to_f32((uint16_t)h)), h);
	}
	assert_true(engine_fp16_to_f32(0x3c00) == 1.0f);
	assert_true(engine_fp16_to_f32(0xc000) == -2.0f);
	assert_true(engine_fp16_to_f32(0x0001) == ldexpf(1, -24));
	assert_int_equal(engine_f32_to_fp16(1e6f), 0x7c00);
	assert_int_equal(engine_f32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie to even */
	assert_int_equal(engine_f32_to_fp16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
	assert_int_equal(engine_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);
	assert_int_equal(engine_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3f82);
	assert_string_equal(engine_type_name(ENGINE_TYPE_Q4_0), "Q4_0");
	assert_int_equal(engine_type_block_bytes(ENGINE_TYPE_Q8_0), 34);
	assert_int_equal(engine_type_block_size(99), 0);
}

static void test_identity(void **state)
{
	(void)state;
	uint8_t *b;
	size_t len;
	small_file(&b, &len);
	engine_gguf *g;
	uint8_t id1[32], id2[32], id3[32];
	assert_int_equal(engine_gguf_open_memory(&g, b, len), 0);
	engine_gguf_identity(g, id1);
	engine_gguf_free(g);
	b[len - 1] ^= 1; /* tensor data: same identity */
	assert_int_equal(engine_gguf_open_memory(&g, b, len), 0);
	engine_gguf_identity(g, id2);
	engine_gguf_free(g);
	assert_memory_equal(id1, id2, 32);
	for (size_t i = 0; i + 5 < len; i++)
		if (!memcmp(b + i, "hello", 5)) {
			b[i] = 'j'; /* metadata: another identity */
			break;
		}
	assert_int_equal(engine_gguf_open_memory(&g, b, len), 0);
	engine_gguf_identity(g, id3);
	engine_gguf_free(g);
	assert_memory_not_equal(id1, id3, 32);
	ag_free(b);
}

/* Model files: truncations, a renamed tensor, a wrong shape, an unsupported type. */
static void test_model_refusals(void **state)
{
	(void)state;
	char path[512], bad[512];
	snprintf(path, sizeof path, "%s/model.gguf", tmpdir());
	snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir());
	engine_jamba_random p;
	engine_jamba_random_init(&p);
	p.n_embd = 32;
	p.n_ff = 32;
	p.n_layer = 3;
	p.attn_period = 3;
	p.attn_offset = 1;
	p.weight_type = ENGINE_TYPE_Q8_0;
	assert_int_equal(engine_jamba_random_write(&p, path), 0);
	engine_model *m;
	assert_int_equal(engine_model_load(&m, path), 0);
	engine_model_free(m);
	char *data;
	size_t len;
	assert_int_equal(ag_read_file(path, 1 << 26, &data, &len), 0);
	/* truncated anywhere: refused (every byte of the header and metadata, then steps) */
	for (size_t cut = 0; cut < len; cut += cut < 4096 ? 7 : 1013) {
		assert_int_equal(ag_write_file(bad, data, cut, 0644), 0);
		assert_int_not_equal(engine_model_load(&m, bad), 0);
		assert_null(m);
	}
	uint8_t *b = malloc(len);
	/* a renamed tensor is missing, and the message names it */
	memcpy(b, data, len);
	size_t at = info_of(b, len, "blk.0.ssm_in.weight");
	b[at + 8 + 10] = 'X';
	assert_int_equal(ag_write_file(bad, b, len, 0644), 0);
	assert_int_equal(engine_model_load(&m, bad), AG_ECORRUPT);
	assert_non_null(strstr(ag_error_last(), "blk.0.ssm_in.weight"));
	/* a wrong shape (swap of the two extents of ssm_out) */
	memcpy(b, data, len);
	at = info_of(b, len, "blk.0.ssm_out.weight") + 8 + strlen("blk.0.ssm_out.weight") + 4;
	uint8_t tmp[8];
	memcpy(tmp, b + at, 8);
	memcpy(b + at, b + at + 8, 8);
	memcpy(b + at + 8, tmp, 8);
	assert_int_equal(ag_write_file(bad, b, len, 0644), 0);
	assert_int_equal(engine_model_load(&m, bad), AG_ECORRUPT);
	assert_non_null(strstr(ag_error_last(), "ssm_out"));
	/* an unsupported type: Q8_0 relabelled Q8_1 (36-byte blocks: may not fit, or refused) */
	memcpy(b, data, len);
	at = info_of(b, len, "blk.2.ffn_up.weight") + 8 + strlen("blk.2.ffn_up.weight") + 4 + 16;
	put32(b + at, 9);
	assert_int_equal(ag_write_file(bad, b, len, 0644), 0);
	assert_int_not_equal(engine_model_load(&m, bad), 0);
	/* a Mamba layer count in metadata that disagrees with the tensors */
	memcpy(b, data, len);
	for (size_t i = 0; i + 17 < len; i++)
		if (!memcmp(b + i, "jamba.block_count", 17)) {
			put32(b + i + 17 + 4, 40);
			break;
		}
	assert_int_equal(ag_write_file(bad, b, len, 0644), 0);
	assert_int_equal(engine_model_load(&m, bad), AG_ECORRUPT);
	/* not a Jamba */
	memcpy(b, data, len);
	for (size_t i = 0; i + 5 < len; i++)
		if (!memcmp(b + i, "jamba", 5)) {
			memcpy(b + i, "llama", 5);
			break;
		}
	assert_int_equal(ag_write_file(bad, b, len, 0644), 0);
	assert_int_equal(engine_model_load(&m, bad), AG_EUNSUPPORTED);
	assert_int_equal(engine_model_load(&m, "/nonexistent/x.gguf"), AG_EIO);
	free(b);
	ag_free(data);
}

int main(void)
{
	ag_alloc_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_metadata_type),
		cmocka_unit_test(test_truncated_at_every_byte),
		cmocka_unit_test(test_wrong_counts_and_header),
		cmocka_unit_test(test_absurd_tensor_infos),
		cmocka_unit_test(test_nested_array),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_half_conversions),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_model_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
