/* jinja_eval.c: evaluation of compiled templates with Python semantics.
 *
 * Values follow Python's rules where chat templates can see them: str() and
 * repr() of lists and dicts, float repr, truthiness, comparisons, dict
 * attribute-then-item lookup, jinja2's Undefined (renders empty, fails on
 * attribute access). Strings carry spans saying which bytes came from data
 * (and from which cJSON node) and which were rendered inside
 * {% generation %}; every operation keeps them (concatenation and slicing
 * exactly, transformations by tainting the whole result). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "jinja_impl.h"
#include "json.h"
#include "utf8.h"

#define MAX_RANGE 100000                 /* as jinja2's sandbox */
#define MAX_OUTPUT ((size_t)256 << 20)   /* one render */
#define MAX_STRING ((size_t)64 << 20)    /* one string made by * or replace */
#define MAX_CALL_DEPTH 200

struct binding {
	char *name;
	struct jval val;
};

struct ft_tpl_vars {
	struct binding *b;
	int n, cap;
	struct ft_arena arena;   /* strings bound by ft_tpl_vars_str */
	struct ft_arena render;  /* what a render makes; reset by each render */
};

struct scope {
	struct scope *parent;
	struct vdict vars;  /* keys are V_STR names */
};

struct vmacro {
	const struct node *def;
	struct scope *closure;
};

struct rt {
	const struct ft_tpl *t;
	struct ft_tpl_vars *vars;
	struct ft_arena *arena;
	struct ft_render *out;
	unsigned train;
	struct ft_err *err;
	jmp_buf fail;
	int depth;
};

/* ---- errors ---- */

static _Noreturn __attribute__((format(printf, 3, 4)))
void rt_fail(struct rt *rt, const struct node *at, const char *fmt, ...)
{
	if (rt->err) {
		rt->err->code = FT_E_RENDER;
		rt->err->line = at ? at->line : 0;
		rt->err->col = at ? at->col : 0;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rt->err->msg, sizeof rt->err->msg, fmt, ap);
		va_end(ap);
	}
	longjmp(rt->fail, 1);
}

static void *ralloc(struct rt *rt, size_t n)
{
	void *p = ft_arena_alloc(rt->arena, n);
	if (!p) {
		if (rt->err)
			ft_err_set(rt->err, FT_E_NOMEM, "out of memory while rendering");
		longjmp(rt->fail, 2);
	}
	return p;
}

/* ---- render output ---- */

void ft_render_init(struct ft_render *r)
{
	ft_buf_init(&r->text, MAX_OUTPUT);
	r->spans = NULL;
	r->nspans = r->cap = 0;
}

void ft_render_reset(struct ft_render *r)
{
	ft_buf_reset(&r->text);
	r->nspans = 0;
}

void ft_render_release(struct ft_render *r)
{
	ft_buf_release(&r->text);
	free(r->spans);
	r->spans = NULL;
	r->nspans = r->cap = 0;
}

static void add_span(struct rt *rt, struct ft_render *r, size_t off, size_t len,
		     const void *origin, unsigned flags)
{
	if (!len || !flags)
		return;
	if (r->nspans) {
		struct ft_span *last = &r->spans[r->nspans - 1];
		if (last->off + last->len == off && last->origin == origin && last->flags == flags) {
			last->len += len;
			return;
		}
	}
	if (r->nspans == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct ft_span *s = realloc(r->spans, cap * sizeof *s);
		if (!s) {
			if (rt->err)
				ft_err_set(rt->err, FT_E_NOMEM, "out of memory while rendering");
			longjmp(rt->fail, 2);
		}
		r->spans = s;
		r->cap = cap;
	}
	r->spans[r->nspans++] = (struct ft_span){ off, len, origin, flags };
}

/* Append s to r; extra flags (FT_SPAN_TRAIN inside generation) cover all of it. */
static void put(struct rt *rt, struct ft_render *r, const struct jstr *s, unsigned extra)
{
	size_t base = r->text.len;
	int rc = ft_buf_append(&r->text, s->p, s->len);
	if (rc == FT_E_TOOBIG)
		rt_fail(rt, NULL, "output larger than %zu bytes", (size_t)MAX_OUTPUT);
	if (rc) {
		if (rt->err)
			ft_err_set(rt->err, FT_E_NOMEM, "out of memory while rendering");
		longjmp(rt->fail, 2);
	}
	size_t pos = 0;
	for (uint32_t i = 0; i < s->nspans; i++) {
		const struct jspan *sp = &s->spans[i];
		if (sp->off > pos)
			add_span(rt, r, base + pos, sp->off - pos, NULL, extra);
		add_span(rt, r, base + sp->off, sp->len, sp->origin, sp->flags | extra);
		pos = sp->off + sp->len;
	}
	if (pos < s->len)
		add_span(rt, r, base + pos, s->len - pos, NULL, extra);
}

static void put_lit(struct rt *rt, struct ft_render *r, const char *p, size_t n)
{
	struct jstr s = { p, n, NULL, 0 };
	put(rt, r, &s, 0);
}

/* Freeze a render buffer into an arena string. */
static struct jstr *render_to_jstr(struct rt *rt, const struct ft_render *r)
{
	struct jstr *s = ralloc(rt, sizeof *s);
	char *p = ralloc(rt, r->text.len + 1);
	if (r->text.len)
		memcpy(p, r->text.data, r->text.len);
	s->p = p;
	s->len = r->text.len;
	if (r->nspans) {
		s->spans = ralloc(rt, r->nspans * sizeof *s->spans);
		for (size_t i = 0; i < r->nspans; i++)
			s->spans[i] = (struct jspan){ (uint32_t)r->spans[i].off, (uint32_t)r->spans[i].len,
						      r->spans[i].origin, r->spans[i].flags };
		s->nspans = (uint32_t)r->nspans;
	}
	return s;
}

/* ---- string helpers ---- */

static struct jval mkstr(struct jstr *s)
{
	struct jval v = { .kind = V_STR };
	v.s = s;
	return v;
}

static struct jstr *lit(struct rt *rt, const char *p, size_t n)
{
	struct jstr *s = ralloc(rt, sizeof *s);
	s->p = p;
	s->len = n;
	return s;
}

static struct jstr *lit_copy(struct rt *rt, const char *p, size_t n)
{
	char *q = ralloc(rt, n + 1);
	memcpy(q, p, n);
	return lit(rt, q, n);
}

static struct jstr *data_str(struct rt *rt, const char *p, size_t n, const void *origin)
{
	struct jstr *s = lit(rt, p, n);
	if (n) {
		s->spans = ralloc(rt, sizeof *s->spans);
		s->spans[0] = (struct jspan){ 0, (uint32_t)n, origin, FT_SPAN_DATA };
		s->nspans = 1;
	}
	return s;
}

/* Substring [off, off+n) sharing the bytes, spans clipped. */
static struct jstr *substr(struct rt *rt, const struct jstr *s, size_t off, size_t n)
{
	struct jstr *r = lit(rt, s->p + off, n);
	uint32_t cnt = 0;
	for (uint32_t i = 0; i < s->nspans; i++)
		if (s->spans[i].off < off + n && s->spans[i].off + s->spans[i].len > off)
			cnt++;
	if (!cnt)
		return r;
	r->spans = ralloc(rt, cnt * sizeof *r->spans);
	for (uint32_t i = 0; i < s->nspans; i++) {
		const struct jspan *sp = &s->spans[i];
		size_t a = sp->off > off ? sp->off : off;
		size_t b = sp->off + sp->len < off + n ? sp->off + sp->len : off + n;
		if (a < b)
			r->spans[r->nspans++] = (struct jspan){ (uint32_t)(a - off), (uint32_t)(b - a),
								sp->origin, sp->flags };
	}
	return r;
}

/* New bytes derived from src: data-ness and flags of src cover all of it. */
static struct jstr *derived(struct rt *rt, const char *p, size_t n, const struct jstr *src)
{
	struct jstr *r = lit(rt, p, n);
	if (!src || !src->nspans || !n)
		return r;
	unsigned flags = 0;
	const void *origin = NULL;
	for (uint32_t i = 0; i < src->nspans; i++) {
		flags |= src->spans[i].flags;
		if (!origin)
			origin = src->spans[i].origin;
	}
	r->spans = ralloc(rt, sizeof *r->spans);
	r->spans[0] = (struct jspan){ 0, (uint32_t)n, origin, flags };
	r->nspans = 1;
	return r;
}

/* A builder for strings assembled from pieces (join, concatenation). */
struct sb {
	struct ft_render r;
};

static void sb_init(struct sb *b)
{
	ft_render_init(&b->r);
}

static struct jstr *sb_done(struct rt *rt, struct sb *b)
{
	struct jstr *s = render_to_jstr(rt, &b->r);
	ft_render_release(&b->r);
	return s;
}

/* ---- value basics ---- */

static struct jval undef(const char *name)
{
	struct jval v = { .kind = V_UNDEF };
	v.undef_name = name;
	return v;
}

static struct jval none(void) { return (struct jval){ .kind = V_NONE }; }

static struct jval mkbool(bool b)
{
	struct jval v = { .kind = V_BOOL };
	v.b = b;
	return v;
}

static struct jval mkint(int64_t i)
{
	struct jval v = { .kind = V_INT };
	v.i = i;
	return v;
}

static struct jval mkfloat(double f)
{
	struct jval v = { .kind = V_FLOAT };
	v.f = f;
	return v;
}

static struct jval from_json(struct rt *rt, const cJSON *n)
{
	if (!n)
		return undef(NULL);
	switch (n->type & 0xFF) {
	case cJSON_NULL: return none();
	case cJSON_True: return mkbool(true);
	case cJSON_False: return mkbool(false);
	case cJSON_Number:
		return ft_json_is_int(n) ? mkint(ft_json_int(n)) : mkfloat(n->valuedouble);
	case cJSON_String:
		return mkstr(data_str(rt, n->valuestring, strlen(n->valuestring), n));
	case cJSON_Array:
	case cJSON_Object: {
		struct jval v = { .kind = V_JSON };
		v.j = n;
		return v;
	}
	default:
		return none();
	}
}

static bool is_json_obj(struct jval v) { return v.kind == V_JSON && cJSON_IsObject(v.j); }
static bool is_json_arr(struct jval v) { return v.kind == V_JSON && cJSON_IsArray(v.j); }
static bool is_seq(struct jval v) { return v.kind == V_LIST || is_json_arr(v); }
static bool is_map(struct jval v) { return v.kind == V_DICT || is_json_obj(v); }
static bool is_num(struct jval v) { return v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL; }

static double num(struct jval v)
{
	return v.kind == V_FLOAT ? v.f : v.kind == V_INT ? (double)v.i : (double)v.b;
}

static int64_t inum(struct jval v)
{
	return v.kind == V_INT ? v.i : v.kind == V_BOOL ? v.b : (int64_t)v.f;
}

static const char *type_name(struct jval v)
{
	switch (v.kind) {
	case V_UNDEF: return "Undefined";
	case V_NONE: return "NoneType";
	case V_BOOL: return "bool";
	case V_INT: return "int";
	case V_FLOAT: return "float";
	case V_STR: return "str";
	case V_LIST: return v.l->tuple ? "tuple" : "list";
	case V_DICT: return "dict";
	case V_JSON: return cJSON_IsArray(v.j) ? "list" : "dict";
	case V_NS: return "Namespace";
	case V_MACRO: return "Macro";
	case V_FUNC: return "function";
	case V_METHOD: return "method";
	case V_LOOP: return "LoopContext";
	}
	return "object";
}

static size_t json_count(const cJSON *n)
{
	size_t k = 0;
	for (const cJSON *c = n->child; c; c = c->next)
		k++;
	return k;
}

static struct vlist *newlist(struct rt *rt, size_t n)
{
	struct vlist *l = ralloc(rt, sizeof *l);
	l->items = ralloc(rt, (n ? n : 1) * sizeof *l->items);
	l->n = n;
	return l;
}

static struct jval mklist(struct vlist *l)
{
	struct jval v = { .kind = V_LIST };
	v.l = l;
	return v;
}

static struct vdict *newdict(struct rt *rt, size_t cap)
{
	struct vdict *d = ralloc(rt, sizeof *d);
	d->cap = cap ? cap : 4;
	d->items = ralloc(rt, d->cap * sizeof *d->items);
	return d;
}

static bool str_eq(const struct jstr *a, const char *p, size_t n)
{
	return a->len == n && !memcmp(a->p, p, n);
}

static bool equals(struct rt *rt, struct jval a, struct jval b);
static struct jval getitem_value(struct rt *rt, struct jval obj, struct jval key, bool *found);

static struct vkv *dict_find(struct rt *rt, struct vdict *d, struct jval key)
{
	for (size_t i = 0; i < d->n; i++)
		if (equals(rt, d->items[i].key, key))
			return &d->items[i];
	return NULL;
}

static struct vkv *dict_find_name(struct vdict *d, const char *name, size_t n)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->items[i].key.kind == V_STR && str_eq(d->items[i].key.s, name, n))
			return &d->items[i];
	return NULL;
}

static void dict_set(struct rt *rt, struct vdict *d, struct jval key, struct jval val)
{
	struct vkv *kv = dict_find(rt, d, key);
	if (kv) {
		kv->val = val;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap * 2;
		struct vkv *items = ralloc(rt, cap * sizeof *items);
		memcpy(items, d->items, d->n * sizeof *items);
		d->items = items;
		d->cap = cap;
	}
	d->items[d->n].key = key;
	d->items[d->n].val = val;
	d->n++;
}

static const cJSON *json_member(const cJSON *obj, const char *k, size_t n)
{
	for (const cJSON *c = obj->child; c; c = c->next)
		if (c->string && strlen(c->string) == n && !memcmp(c->string, k, n))
			return c;
	return NULL;
}

/* The items of an iterable, materialised. Strings iterate code points, maps
 * their keys. */
static struct vlist *to_list(struct rt *rt, struct jval v, const struct node *at)
{
	switch (v.kind) {
	case V_UNDEF:
		return newlist(rt, 0);
	case V_LIST:
		return v.l;
	case V_JSON: {
		struct vlist *l = newlist(rt, json_count(v.j));
		size_t i = 0;
		for (const cJSON *c = v.j->child; c; c = c->next, i++) {
			if (cJSON_IsObject(v.j))
				l->items[i] = mkstr(data_str(rt, c->string ? c->string : "",
							     c->string ? strlen(c->string) : 0, c));
			else
				l->items[i] = from_json(rt, c);
		}
		return l;
	}
	case V_DICT:
	case V_NS: {
		struct vlist *l = newlist(rt, v.d->n);
		for (size_t i = 0; i < v.d->n; i++)
			l->items[i] = v.d->items[i].key;
		return l;
	}
	case V_STR: {
		size_t n = ft_utf8_count(v.s->p, v.s->len);
		struct vlist *l = newlist(rt, n);
		size_t off = 0;
		for (size_t i = 0; i < n; i++) {
			int32_t cp;
			int k = ft_utf8_decode(v.s->p + off, v.s->len - off, &cp);
			l->items[i] = mkstr(substr(rt, v.s, off, (size_t)k));
			off += (size_t)k;
		}
		return l;
	}
	default:
		rt_fail(rt, at, "'%s' object is not iterable", type_name(v));
	}
}

static bool truthy(struct jval v)
{
	switch (v.kind) {
	case V_UNDEF: case V_NONE: return false;
	case V_BOOL: return v.b;
	case V_INT: return v.i != 0;
	case V_FLOAT: return v.f != 0;
	case V_STR: return v.s->len != 0;
	case V_LIST: return v.l->n != 0;
	case V_DICT: return v.d->n != 0;
	case V_JSON: return v.j->child != NULL;
	default: return true;
	}
}

static int64_t length(struct rt *rt, struct jval v, const struct node *at)
{
	switch (v.kind) {
	case V_UNDEF: return 0;
	case V_STR: return (int64_t)ft_utf8_count(v.s->p, v.s->len);
	case V_LIST: return (int64_t)v.l->n;
	case V_DICT: case V_NS: return (int64_t)v.d->n;
	case V_JSON: return (int64_t)json_count(v.j);
	default: rt_fail(rt, at, "object of type '%s' has no len()", type_name(v));
	}
}

/* ---- equality and ordering (Python) ---- */

static bool equals(struct rt *rt, struct jval a, struct jval b)
{
	if (is_num(a) && is_num(b)) {
		if (a.kind != V_FLOAT && b.kind != V_FLOAT)
			return inum(a) == inum(b);
		return num(a) == num(b);
	}
	if (a.kind == V_STR && b.kind == V_STR)
		return a.s->len == b.s->len && !memcmp(a.s->p, b.s->p, a.s->len);
	if (a.kind == V_NONE || b.kind == V_NONE)
		return a.kind == b.kind;
	if (a.kind == V_UNDEF || b.kind == V_UNDEF)
		return a.kind == b.kind;
	if (is_seq(a) && is_seq(b)) {
		bool ta = a.kind == V_LIST && a.l->tuple, tb = b.kind == V_LIST && b.l->tuple;
		if (ta != tb)
			return false;
		struct vlist *x = to_list(rt, a, NULL), *y = to_list(rt, b, NULL);
		if (x->n != y->n)
			return false;
		for (size_t i = 0; i < x->n; i++)
			if (!equals(rt, x->items[i], y->items[i]))
				return false;
		return true;
	}
	if (is_map(a) && is_map(b)) {
		if (a.kind == V_JSON && b.kind == V_JSON && a.j == b.j)
			return true;
		struct vlist *ka = to_list(rt, a, NULL), *kb = to_list(rt, b, NULL);
		if (ka->n != kb->n)
			return false;
		/* every key of a is in b with an equal value */
		for (size_t i = 0; i < ka->n; i++) {
			bool found_a, found_b;
			struct jval va = getitem_value(rt, a, ka->items[i], &found_a);
			struct jval vb = getitem_value(rt, b, ka->items[i], &found_b);
			if (!found_b || !equals(rt, va, vb))
				return false;
		}
		return true;
	}
	if (a.kind != b.kind)
		return false;
	switch (a.kind) {
	case V_NS: case V_DICT: return a.d == b.d;
	case V_MACRO: return a.macro == b.macro;
	case V_FUNC: return a.func == b.func;
	default: return false;
	}
}

static int compare(struct rt *rt, struct jval a, struct jval b, const struct node *at)
{
	if (is_num(a) && is_num(b)) {
		if (a.kind != V_FLOAT && b.kind != V_FLOAT)
			return inum(a) < inum(b) ? -1 : inum(a) > inum(b);
		double x = num(a), y = num(b);
		return x < y ? -1 : x > y;
	}
	if (a.kind == V_STR && b.kind == V_STR) {
		size_t n = a.s->len < b.s->len ? a.s->len : b.s->len;
		int c = memcmp(a.s->p, b.s->p, n);
		if (c)
			return c < 0 ? -1 : 1;
		return a.s->len < b.s->len ? -1 : a.s->len > b.s->len;
	}
	if (is_seq(a) && is_seq(b)) {
		struct vlist *x = to_list(rt, a, at), *y = to_list(rt, b, at);
		for (size_t i = 0; i < x->n && i < y->n; i++) {
			if (equals(rt, x->items[i], y->items[i]))
				continue;
			return compare(rt, x->items[i], y->items[i], at);
		}
		return x->n < y->n ? -1 : x->n > y->n;
	}
	rt_fail(rt, at, "'<' not supported between instances of '%s' and '%s'", type_name(a),
		type_name(b));
}

/* ---- str() and repr() ---- */

static void repr_into(struct rt *rt, struct ft_render *r, struct jval v, int depth);

static const char *const method_names[];

static struct jstr *int_str(struct rt *rt, int64_t i)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%" PRId64, i);
	return lit_copy(rt, tmp, (size_t)n);
}

static struct jstr *float_str(struct rt *rt, double f)
{
	char tmp[32];
	int n = ft_fmt_pyfloat(f, tmp);
	return lit_copy(rt, tmp, (size_t)n);
}

static struct jstr *to_str(struct rt *rt, struct jval v)
{
	switch (v.kind) {
	case V_STR: return v.s;
	case V_UNDEF: return lit(rt, "", 0);
	case V_NONE: return lit(rt, "None", 4);
	case V_BOOL: return v.b ? lit(rt, "True", 4) : lit(rt, "False", 5);
	case V_INT: return int_str(rt, v.i);
	case V_FLOAT: return float_str(rt, v.f);
	default: {
		struct sb b;
		sb_init(&b);
		repr_into(rt, &b.r, v, 0);
		return sb_done(rt, &b);
	}
	}
}

static bool py_printable(int32_t cp)
{
	if (cp == ' ')
		return true;
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
	case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
	case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
		return false;
	default:
		return true;
	}
}

static void repr_str(struct rt *rt, struct ft_render *r, const struct jstr *s)
{
	bool sq = memchr(s->p, '\'', s->len) != NULL, dq = memchr(s->p, '"', s->len) != NULL;
	char q = sq && !dq ? '"' : '\'';
	struct ft_buf b;
	ft_buf_init(&b, 0);
	int rc = ft_buf_putc(&b, q);
	for (size_t i = 0; i < s->len && !rc;) {
		int32_t cp;
		int k = ft_utf8_decode(s->p + i, s->len - i, &cp);
		if (cp == q || cp == '\\')
			rc = ft_buf_printf(&b, "\\%c", (char)cp);
		else if (cp == '\n')
			rc = ft_buf_puts(&b, "\\n");
		else if (cp == '\r')
			rc = ft_buf_puts(&b, "\\r");
		else if (cp == '\t')
			rc = ft_buf_puts(&b, "\\t");
		else if (!py_printable(cp))
			rc = cp < 0x100 ? ft_buf_printf(&b, "\\x%02x", cp) :
			     cp < 0x10000 ? ft_buf_printf(&b, "\\u%04x", cp) :
					    ft_buf_printf(&b, "\\U%08x", cp);
		else
			rc = ft_buf_append(&b, s->p + i, (size_t)k);
		i += (size_t)k;
	}
	if (!rc)
		rc = ft_buf_putc(&b, q);
	if (rc) {
		ft_buf_release(&b);
		rt_fail(rt, NULL, "out of memory");
	}
	char *copy = ralloc(rt, b.len + 1);
	memcpy(copy, b.data, b.len);
	size_t n = b.len;
	ft_buf_release(&b);
	put(rt, r, derived(rt, copy, n, s), 0);
}

static void repr_into(struct rt *rt, struct ft_render *r, struct jval v, int depth)
{
	if (depth > 100)
		rt_fail(rt, NULL, "maximum recursion depth exceeded in repr");
	switch (v.kind) {
	case V_STR:
		repr_str(rt, r, v.s);
		return;
	case V_LIST:
	case V_JSON:
		if (v.kind == V_LIST || cJSON_IsArray(v.j)) {
			bool tuple = v.kind == V_LIST && v.l->tuple;
			struct vlist *l = to_list(rt, v, NULL);
			put_lit(rt, r, tuple ? "(" : "[", 1);
			for (size_t i = 0; i < l->n; i++) {
				if (i)
					put_lit(rt, r, ", ", 2);
				repr_into(rt, r, l->items[i], depth + 1);
			}
			if (tuple && l->n == 1)
				put_lit(rt, r, ",", 1);
			put_lit(rt, r, tuple ? ")" : "]", 1);
			return;
		}
		put_lit(rt, r, "{", 1);
		for (const cJSON *c = v.j->child; c; c = c->next) {
			repr_str(rt, r, data_str(rt, c->string ? c->string : "",
						 c->string ? strlen(c->string) : 0, c));
			put_lit(rt, r, ": ", 2);
			repr_into(rt, r, from_json(rt, c), depth + 1);
			if (c->next)
				put_lit(rt, r, ", ", 2);
		}
		put_lit(rt, r, "}", 1);
		return;
	case V_DICT:
		put_lit(rt, r, "{", 1);
		for (size_t i = 0; i < v.d->n; i++) {
			if (i)
				put_lit(rt, r, ", ", 2);
			repr_into(rt, r, v.d->items[i].key, depth + 1);
			put_lit(rt, r, ": ", 2);
			repr_into(rt, r, v.d->items[i].val, depth + 1);
		}
		put_lit(rt, r, "}", 1);
		return;
	case V_NS:
		put_lit(rt, r, "<Namespace ", 11);
		repr_into(rt, r, (struct jval){ .kind = V_DICT, .d = v.d }, depth + 1);
		put_lit(rt, r, ">", 1);
		return;
	case V_MACRO: {
		char tmp[300];
		int n = snprintf(tmp, sizeof tmp, "<Macro '%s'>", ((struct vmacro *)v.macro)->def->name);
		put(rt, r, lit_copy(rt, tmp, (size_t)n), 0);
		return;
	}
	case V_FUNC:
		put_lit(rt, r, "<function>", 10);
		return;
	case V_METHOD:
		put_lit(rt, r, "<built-in method>", 17);
		return;
	case V_LOOP:
		put_lit(rt, r, "<LoopContext>", 13);
		return;
	case V_UNDEF:
		put_lit(rt, r, "Undefined", 9);
		return;
	default:
		put(rt, r, to_str(rt, v), 0);
	}
}

/* ---- tojson (Python json.dumps) ---- */

static const void *first_origin(struct rt *rt, struct jval v, int depth)
{
	if (depth > 100)
		return NULL;
	if (v.kind == V_JSON)
		return v.j;
	if (v.kind == V_STR)
		for (uint32_t i = 0; i < v.s->nspans; i++)
			if (v.s->spans[i].flags & FT_SPAN_DATA)
				return v.s->spans[i].origin ? v.s->spans[i].origin : v.s;
	if (v.kind == V_LIST)
		for (size_t i = 0; i < v.l->n; i++) {
			const void *o = first_origin(rt, v.l->items[i], depth + 1);
			if (o)
				return o;
		}
	if (v.kind == V_DICT || v.kind == V_NS)
		for (size_t i = 0; i < v.d->n; i++) {
			const void *o = first_origin(rt, v.d->items[i].key, depth + 1);
			if (!o)
				o = first_origin(rt, v.d->items[i].val, depth + 1);
			if (o)
				return o;
		}
	return NULL;
}

static void dumps(struct rt *rt, struct ft_buf *b, struct jval v, int indent, int depth,
		  const struct node *at)
{
	int rc = 0;
	char tmp[32];
	if (depth > 500)
		rt_fail(rt, at, "maximum recursion depth exceeded in tojson");
	switch (v.kind) {
	case V_NONE: rc = ft_buf_puts(b, "null"); break;
	case V_BOOL: rc = ft_buf_puts(b, v.b ? "true" : "false"); break;
	case V_INT: rc = ft_buf_printf(b, "%" PRId64, v.i); break;
	case V_FLOAT: rc = ft_buf_append(b, tmp, (size_t)ft_fmt_jsonfloat(v.f, tmp)); break;
	case V_STR: rc = ft_json_write_string(b, v.s->p, v.s->len); break;
	case V_JSON: rc = ft_json_write_py_depth(b, v.j, indent, depth); break;
	case V_LIST:
	case V_DICT: {
		bool dict = v.kind == V_DICT;
		size_t n = dict ? v.d->n : v.l->n;
		rc = ft_buf_putc(b, dict ? '{' : '[');
		if (!n) {
			rc = rc ? rc : ft_buf_putc(b, dict ? '}' : ']');
			break;
		}
		for (size_t i = 0; i < n && !rc; i++) {
			if (indent >= 0) {
				rc = ft_buf_putc(b, '\n');
				for (int k = 0; k < indent * (depth + 1) && !rc; k++)
					rc = ft_buf_putc(b, ' ');
			}
			if (dict) {
				struct jval k = v.d->items[i].key;
				if (k.kind == V_STR)
					rc = ft_json_write_string(b, k.s->p, k.s->len);
				else if (k.kind == V_INT || k.kind == V_FLOAT || k.kind == V_BOOL ||
					 k.kind == V_NONE) {
					struct ft_buf kb;
					ft_buf_init(&kb, 0);
					dumps(rt, &kb, k, -1, 0, at);
					rc = ft_json_write_string(b, kb.data, kb.len);
					ft_buf_release(&kb);
				} else
					rt_fail(rt, at, "keys must be str, int, float, bool or None, not %s",
						type_name(k));
				rc = rc ? rc : ft_buf_puts(b, ": ");
				if (!rc)
					dumps(rt, b, v.d->items[i].val, indent, depth + 1, at);
			} else {
				dumps(rt, b, v.l->items[i], indent, depth + 1, at);
			}
			if (i + 1 < n && !rc)
				rc = ft_buf_puts(b, indent >= 0 ? "," : ", ");
		}
		if (!rc && indent >= 0) {
			rc = ft_buf_putc(b, '\n');
			for (int k = 0; k < indent * depth && !rc; k++)
				rc = ft_buf_putc(b, ' ');
		}
		rc = rc ? rc : ft_buf_putc(b, dict ? '}' : ']');
		break;
	}
	case V_NS:
		dumps(rt, b, (struct jval){ .kind = V_DICT, .d = v.d }, indent, depth, at);
		break;
	default:
		rt_fail(rt, at, "Object of type %s is not JSON serializable", type_name(v));
	}
	if (rc)
		rt_fail(rt, at, "tojson output too large");
}

static struct jstr *tojson(struct rt *rt, struct jval v, int indent, const struct node *at)
{
	struct ft_buf b;
	ft_buf_init(&b, MAX_STRING);
	dumps(rt, &b, v, indent, 0, at);
	char *p = ralloc(rt, b.len + 1);
	memcpy(p, b.data ? b.data : "", b.len);
	size_t n = b.len;
	ft_buf_release(&b);
	const void *origin = first_origin(rt, v, 0);
	return origin ? data_str(rt, p, n, origin) : lit(rt, p, n);
}

/* ---- scopes and names ---- */

static struct scope *push_scope(struct rt *rt, struct scope *parent)
{
	struct scope *s = ralloc(rt, sizeof *s);
	s->parent = parent;
	s->vars.cap = 4;
	s->vars.items = ralloc(rt, 4 * sizeof *s->vars.items);
	return s;
}

static void scope_set(struct rt *rt, struct scope *s, const char *name, struct jval v)
{
	size_t n = strlen(name);
	struct vkv *kv = dict_find_name(&s->vars, name, n);
	if (kv) {
		kv->val = v;
		return;
	}
	dict_set(rt, &s->vars, mkstr(lit(rt, name, n)), v);
}

enum globals_id { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME, G_LIPSUM_NONE };

static bool lookup(struct rt *rt, struct scope *s, const char *name, size_t n, struct jval *out)
{
	for (; s; s = s->parent) {
		struct vkv *kv = dict_find_name(&s->vars, name, n);
		if (kv) {
			*out = kv->val;
			return true;
		}
	}
	struct ft_tpl_vars *vars = rt->vars;
	for (int i = vars ? vars->n - 1 : -1; i >= 0; i--)
		if (strlen(vars->b[i].name) == n && !memcmp(vars->b[i].name, name, n)) {
			*out = vars->b[i].val;
			if (out->kind == V_JSON && !cJSON_IsArray(out->j) && !cJSON_IsObject(out->j))
				*out = from_json(rt, out->j);
			return true;
		}
	static const struct { const char *name; int id; } globals[] = {
		{ "range", G_RANGE }, { "dict", G_DICT }, { "namespace", G_NAMESPACE },
		{ "raise_exception", G_RAISE }, { "strftime_now", G_STRFTIME },
	};
	for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
		if (strlen(globals[i].name) == n && !memcmp(globals[i].name, name, n)) {
			out->kind = V_FUNC;
			out->func = globals[i].id;
			return true;
		}
	return false;
}

/* ---- attribute and item access ---- */

enum method_id {
	M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_STARTSWITH, M_ENDSWITH, M_UPPER,
	M_LOWER, M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_JOIN,
	M_SPLITLINES, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISUPPER, M_ISLOWER,
	M_STR_END,
	M_ITEMS = M_STR_END, M_KEYS, M_VALUES, M_GET, M_DICT_END,
	M_INDEX = M_DICT_END, M_LCOUNT, M_LIST_END,
	M_CYCLE = M_LIST_END,
};

static const char *const method_names[] = {
	"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
	"lower", "title", "capitalize", "replace", "find", "rfind", "count", "join",
	"splitlines", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
	"items", "keys", "values", "get",
	"index", "count",
	"cycle",
};

static int method_lookup(int from, int to, const char *name, size_t n)
{
	for (int i = from; i < to; i++)
		if (strlen(method_names[i]) == n && !memcmp(method_names[i], name, n))
			return i;
	return -1;
}

static struct jval mkmethod(struct rt *rt, struct jval self, int id)
{
	struct vmethod *m = ralloc(rt, sizeof *m);
	m->self = self;
	m->id = id;
	struct jval v = { .kind = V_METHOD };
	v.m = m;
	return v;
}

static struct jval loop_attr(struct rt *rt, struct jval v, const char *name, size_t n, bool *found)
{
	struct loopinfo *L = v.loop;
	*found = true;
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
	if (IS("index")) return mkint(L->index0 + 1);
	if (IS("index0")) return mkint(L->index0);
	if (IS("revindex")) return mkint(L->length - L->index0);
	if (IS("revindex0")) return mkint(L->length - L->index0 - 1);
	if (IS("first")) return mkbool(L->index0 == 0);
	if (IS("last")) return mkbool(L->index0 == L->length - 1);
	if (IS("length")) return mkint(L->length);
	if (IS("depth")) return mkint(L->depth);
	if (IS("depth0")) return mkint(L->depth - 1);
	if (IS("previtem")) return L->has_prev ? L->prev : undef("previtem");
	if (IS("nextitem")) return L->has_next ? L->next : undef("nextitem");
	if (IS("cycle")) return mkmethod(rt, v, M_CYCLE);
#undef IS
	*found = false;
	return undef(NULL);
}

/* obj.name: Python attribute first (methods), then item, as jinja2 does. */
static struct jval getattr_(struct rt *rt, struct jval obj, const char *name, size_t n,
			    const struct node *at)
{
	int id;
	bool found;
	switch (obj.kind) {
	case V_UNDEF:
		rt_fail(rt, at, "'%s' is undefined", obj.undef_name ? obj.undef_name : "value");
	case V_STR:
		if ((id = method_lookup(0, M_STR_END, name, n)) >= 0)
			return mkmethod(rt, obj, id);
		break;
	case V_DICT:
	case V_JSON:
		if (is_map(obj)) {
			if ((id = method_lookup(M_ITEMS, M_DICT_END, name, n)) >= 0)
				return mkmethod(rt, obj, id);
			struct jval key = mkstr(lit(rt, name, n));
			struct jval v = getitem_value(rt, obj, key, &found);
			if (found)
				return v;
		} else if ((id = method_lookup(M_INDEX, M_LIST_END, name, n)) >= 0) {
			return mkmethod(rt, obj, id);
		}
		break;
	case V_LIST:
		if ((id = method_lookup(M_INDEX, M_LIST_END, name, n)) >= 0)
			return mkmethod(rt, obj, id);
		break;
	case V_NS: {
		struct vkv *kv = dict_find_name(obj.d, name, n);
		if (kv)
			return kv->val;
		break;
	}
	case V_LOOP: {
		struct jval v = loop_attr(rt, obj, name, n, &found);
		if (found)
			return v;
		break;
	}
	default:
		break;
	}
	char *nm = ralloc(rt, n + 1);
	memcpy(nm, name, n);
	return undef(nm);
}

static int64_t norm_index(int64_t i, int64_t len)
{
	return i < 0 ? i + len : i;
}

static struct jval getitem_value(struct rt *rt, struct jval obj, struct jval key, bool *found)
{
	*found = false;
	if (obj.kind == V_JSON) {
		if (cJSON_IsObject(obj.j)) {
			if (key.kind != V_STR)
				return undef(NULL);
			const cJSON *c = json_member(obj.j, key.s->p, key.s->len);
			if (c) {
				*found = true;
				return from_json(rt, c);
			}
			return undef(NULL);
		}
		if (key.kind != V_INT && key.kind != V_BOOL)
			return undef(NULL);
		int64_t i = norm_index(inum(key), (int64_t)json_count(obj.j));
		if (i < 0)
			return undef(NULL);
		const cJSON *c = obj.j->child;
		for (; c && i > 0; i--)
			c = c->next;
		if (!c)
			return undef(NULL);
		*found = true;
		return from_json(rt, c);
	}
	if (obj.kind == V_DICT || obj.kind == V_NS) {
		struct vkv *kv = dict_find(rt, obj.d, key);
		if (kv) {
			*found = true;
			return kv->val;
		}
		return undef(NULL);
	}
	if (obj.kind == V_LIST && (key.kind == V_INT || key.kind == V_BOOL)) {
		int64_t i = norm_index(inum(key), (int64_t)obj.l->n);
		if (i >= 0 && i < (int64_t)obj.l->n) {
			*found = true;
			return obj.l->items[i];
		}
		return undef(NULL);
	}
	if (obj.kind == V_STR && (key.kind == V_INT || key.kind == V_BOOL)) {
		int64_t len = (int64_t)ft_utf8_count(obj.s->p, obj.s->len);
		int64_t i = norm_index(inum(key), len);
		if (i >= 0 && i < len) {
			size_t a = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)i);
			size_t b = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)i + 1);
			*found = true;
			return mkstr(substr(rt, obj.s, a, b - a));
		}
	}
	return undef(NULL);
}

/* obj[key]: item first, then attribute for string keys. */
static struct jval getitem_(struct rt *rt, struct jval obj, struct jval key, const struct node *at)
{
	if (obj.kind == V_UNDEF)
		rt_fail(rt, at, "'%s' is undefined", obj.undef_name ? obj.undef_name : "value");
	bool found;
	struct jval v = getitem_value(rt, obj, key, &found);
	if (found)
		return v;
	if (key.kind == V_STR)
		return getattr_(rt, obj, key.s->p, key.s->len, at);
	struct jstr *ks = to_str(rt, key);
	char *nm = ralloc(rt, ks->len + 1);
	memcpy(nm, ks->p, ks->len);
	return undef(nm);
}

static struct jval slice_(struct rt *rt, struct jval obj, struct jval start, struct jval stop,
			  struct jval step, const struct node *at)
{
	int64_t len;
	struct vlist *items = NULL;
	if (obj.kind == V_STR)
		len = (int64_t)ft_utf8_count(obj.s->p, obj.s->len);
	else if (is_seq(obj))
		len = (int64_t)(items = to_list(rt, obj, at))->n;
	else if (obj.kind == V_UNDEF)
		rt_fail(rt, at, "'%s' is undefined", obj.undef_name ? obj.undef_name : "value");
	else
		rt_fail(rt, at, "'%s' object is not subscriptable", type_name(obj));
	int64_t st = step.kind == V_NONE || step.kind == V_UNDEF ? 1 : inum(step);
	if (st == 0)
		rt_fail(rt, at, "slice step cannot be zero");
	int64_t a, b;
	if (start.kind == V_NONE || start.kind == V_UNDEF)
		a = st > 0 ? 0 : len - 1;
	else {
		a = inum(start);
		if (a < 0)
			a += len;
		if (a < 0)
			a = st > 0 ? 0 : -1;
		if (a > len)
			a = st > 0 ? len : len - 1;
		if (st < 0 && a >= len)
			a = len - 1;
	}
	if (stop.kind == V_NONE || stop.kind == V_UNDEF)
		b = st > 0 ? len : -1;
	else {
		b = inum(stop);
		if (b < 0)
			b += len;
		if (b < 0)
			b = st > 0 ? 0 : -1;
		if (b > len)
			b = len;
	}
	if (obj.kind == V_STR && st == 1) {
		if (b < a)
			b = a;
		size_t x = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)a);
		size_t y = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)b);
		return mkstr(substr(rt, obj.s, x, y - x));
	}
	if (obj.kind == V_STR)
		items = to_list(rt, obj, at);
	size_t cnt = 0;
	for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
		cnt++;
	struct vlist *out = newlist(rt, cnt);
	size_t k = 0;
	for (int64_t i = a; st > 0 ? i < b : i > b; i += st)
		out->items[k++] = items->items[i];
	if (obj.kind != V_STR)
		return mklist(out);
	struct sb sbb;
	sb_init(&sbb);
	for (size_t i = 0; i < cnt; i++)
		put(rt, &sbb.r, out->items[i].s, 0);
	return mkstr(sb_done(rt, &sbb));
}

/* ---- arguments ---- */

struct args {
	struct jval *pos;
	int npos;
	const char **kwn;
	struct jval *kwv;
	int nkw;
};

static struct jval arg(const struct args *a, int i, const char *name, struct jval dflt)
{
	if (i >= 0 && i < a->npos)
		return a->pos[i];
	for (int k = 0; k < a->nkw; k++)
		if (!strcmp(a->kwn[k], name))
			return a->kwv[k];
	return dflt;
}

static bool has_arg(const struct args *a, int i, const char *name)
{
	if (i >= 0 && i < a->npos)
		return true;
	for (int k = 0; k < a->nkw; k++)
		if (!strcmp(a->kwn[k], name))
			return true;
	return false;
}

/* ---- evaluation ---- */

static struct jval eval(struct rt *rt, struct scope *sc, const struct node *e);
static int exec_body(struct rt *rt, struct scope *sc, const struct node *body);
static struct jval apply_filter(struct rt *rt, int id, struct jval v, struct args *a,
				const struct node *at, struct scope *sc);
static bool apply_test(struct rt *rt, int id, struct jval v, struct args *a, const struct node *at);

static void eval_args(struct rt *rt, struct scope *sc, const struct node *call, struct args *a,
		      int skip_first)
{
	a->npos = call->n - skip_first;
	if (a->npos < 0)
		a->npos = 0;
	a->pos = ralloc(rt, (size_t)(a->npos + 1) * sizeof *a->pos);
	for (int i = 0; i < a->npos; i++)
		a->pos[i] = eval(rt, sc, call->list[i + skip_first]);
	a->nkw = call->nkw;
	a->kwn = call->kwnames;
	a->kwv = ralloc(rt, (size_t)(call->nkw + 1) * sizeof *a->kwv);
	for (int i = 0; i < call->nkw; i++)
		a->kwv[i] = eval(rt, sc, call->kwvals[i]);
}

static struct jval concat_str(struct rt *rt, struct jstr *a, struct jstr *b)
{
	struct sb sbb;
	sb_init(&sbb);
	put(rt, &sbb.r, a, 0);
	put(rt, &sbb.r, b, 0);
	return mkstr(sb_done(rt, &sbb));
}

static struct jval repeat(struct rt *rt, struct jval seq, int64_t times, const struct node *at)
{
	if (times < 0)
		times = 0;
	if (seq.kind == V_STR) {
		if (seq.s->len && (size_t)times > MAX_STRING / seq.s->len)
			rt_fail(rt, at, "string too long");
		struct sb sbb;
		sb_init(&sbb);
		for (int64_t i = 0; i < times; i++)
			put(rt, &sbb.r, seq.s, 0);
		return mkstr(sb_done(rt, &sbb));
	}
	struct vlist *l = to_list(rt, seq, at);
	if (l->n && (size_t)times > MAX_RANGE / l->n)
		rt_fail(rt, at, "list too long");
	struct vlist *out = newlist(rt, l->n * (size_t)times);
	for (int64_t i = 0; i < times; i++)
		memcpy(out->items + i * (int64_t)l->n, l->items, l->n * sizeof *l->items);
	return mklist(out);
}

static struct jval percent_format(struct rt *rt, struct jstr *fmt, struct jval args,
				  const struct node *at);

static struct jval arith(struct rt *rt, int op, struct jval a, struct jval b, const struct node *at)
{
	if (op == OP_CONCAT)
		return concat_str(rt, to_str(rt, a), to_str(rt, b));
	if (a.kind == V_UNDEF || b.kind == V_UNDEF) {
		struct jval u = a.kind == V_UNDEF ? a : b;
		rt_fail(rt, at, "'%s' is undefined", u.undef_name ? u.undef_name : "value");
	}
	if (is_num(a) && is_num(b)) {
		bool fl = a.kind == V_FLOAT || b.kind == V_FLOAT;
		int64_t x = inum(a), y = inum(b), r;
		double fx = num(a), fy = num(b);
		switch (op) {
		case OP_ADD:
			if (!fl && !__builtin_add_overflow(x, y, &r))
				return mkint(r);
			return mkfloat(fx + fy);
		case OP_SUB:
			if (!fl && !__builtin_sub_overflow(x, y, &r))
				return mkint(r);
			return mkfloat(fx - fy);
		case OP_MUL:
			if (!fl && !__builtin_mul_overflow(x, y, &r))
				return mkint(r);
			return mkfloat(fx * fy);
		case OP_DIV:
			if (fy == 0)
				rt_fail(rt, at, "division by zero");
			return mkfloat(fx / fy);
		case OP_FLOORDIV:
			if (fy == 0)
				rt_fail(rt, at, "integer division or modulo by zero");
			if (!fl) {
				int64_t q = x / y;
				if ((x % y != 0) && ((x < 0) != (y < 0)))
					q--;
				return mkint(q);
			}
			return mkfloat(floor(fx / fy));
		case OP_MOD:
			if (fy == 0)
				rt_fail(rt, at, "integer division or modulo by zero");
			if (!fl) {
				int64_t m = x % y;
				if (m && ((m < 0) != (y < 0)))
					m += y;
				return mkint(m);
			} else {
				double m = fmod(fx, fy);
				if (m != 0 && ((m < 0) != (fy < 0)))
					m += fy;
				return mkfloat(m);
			}
		case OP_POW:
			if (!fl && y >= 0) {
				int64_t acc = 1;
				bool ovf = false;
				for (int64_t i = 0; i < y && !ovf; i++)
					ovf = __builtin_mul_overflow(acc, x, &acc);
				if (!ovf)
					return mkint(acc);
			}
			return mkfloat(pow(fx, fy));
		}
	}
	if (op == OP_ADD && a.kind == V_STR && b.kind == V_STR)
		return concat_str(rt, a.s, b.s);
	if (op == OP_ADD && is_seq(a) && is_seq(b)) {
		struct vlist *x = to_list(rt, a, at), *y = to_list(rt, b, at);
		struct vlist *out = newlist(rt, x->n + y->n);
		memcpy(out->items, x->items, x->n * sizeof *x->items);
		memcpy(out->items + x->n, y->items, y->n * sizeof *y->items);
		out->tuple = a.kind == V_LIST && a.l->tuple;
		return mklist(out);
	}
	if (op == OP_MUL && (a.kind == V_STR || is_seq(a)) && (b.kind == V_INT || b.kind == V_BOOL))
		return repeat(rt, a, inum(b), at);
	if (op == OP_MUL && (b.kind == V_STR || is_seq(b)) && (a.kind == V_INT || a.kind == V_BOOL))
		return repeat(rt, b, inum(a), at);
	if (op == OP_MOD && a.kind == V_STR)
		return percent_format(rt, a.s, b, at);
	static const char *const opname[] = { "+", "-", "*", "/", "//", "%", "**", "~" };
	if (op == OP_ADD && a.kind == V_STR)
		rt_fail(rt, at, "can only concatenate str (not \"%s\") to str", type_name(b));
	rt_fail(rt, at, "unsupported operand type(s) for %s: '%s' and '%s'", opname[op],
		type_name(a), type_name(b));
}

static bool contains(struct rt *rt, struct jval hay, struct jval needle, const struct node *at)
{
	if (hay.kind == V_STR) {
		if (needle.kind != V_STR)
			rt_fail(rt, at, "'in <string>' requires string as left operand, not %s",
				type_name(needle));
		if (!needle.s->len)
			return true;
		return memmem(hay.s->p, hay.s->len, needle.s->p, needle.s->len) != NULL;
	}
	if (is_map(hay) || hay.kind == V_NS) {
		bool found;
		if (hay.kind == V_NS)
			return dict_find(rt, hay.d, needle) != NULL;
		getitem_value(rt, hay, needle, &found);
		return found;
	}
	if (is_seq(hay)) {
		struct vlist *l = to_list(rt, hay, at);
		for (size_t i = 0; i < l->n; i++)
			if (equals(rt, l->items[i], needle))
				return true;
		return false;
	}
	if (hay.kind == V_UNDEF)
		return false;
	rt_fail(rt, at, "argument of type '%s' is not iterable", type_name(hay));
}

static struct jval call_macro(struct rt *rt, struct vmacro *m, struct args *a, const struct node *at)
{
	const struct node *def = m->def;
	if (rt->depth >= MAX_CALL_DEPTH)
		rt_fail(rt, at, "maximum recursion depth exceeded");
	if (a->npos > def->nnames)
		rt_fail(rt, at, "macro '%s' takes not more than %d argument(s)", def->name, def->nnames);
	struct scope *sc = push_scope(rt, m->closure);
	for (int i = 0; i < def->nnames; i++) {
		struct jval v;
		if (i < a->npos)
			v = a->pos[i];
		else {
			int k;
			for (k = 0; k < a->nkw; k++)
				if (!strcmp(a->kwn[k], def->names[i]))
					break;
			if (k < a->nkw)
				v = a->kwv[k];
			else if (def->kwvals[i])
				v = eval(rt, sc, def->kwvals[i]);
			else
				v = undef(def->names[i]);
		}
		scope_set(rt, sc, def->names[i], v);
	}
	for (int k = 0; k < a->nkw; k++) {
		int i;
		for (i = 0; i < def->nnames; i++)
			if (!strcmp(a->kwn[k], def->names[i]))
				break;
		if (i == def->nnames)
			rt_fail(rt, at, "macro '%s' takes no keyword argument '%s'", def->name, a->kwn[k]);
	}
	struct ft_render cap, *saved = rt->out;
	unsigned saved_train = rt->train;
	ft_render_init(&cap);
	rt->out = &cap;
	rt->train = 0;
	rt->depth++;
	/* the capture buffer must be freed even when the body fails */
	jmp_buf outer;
	memcpy(outer, rt->fail, sizeof outer);
	if (setjmp(rt->fail)) {
		ft_render_release(&cap);
		rt->out = saved;
		memcpy(rt->fail, outer, sizeof outer);
		longjmp(rt->fail, 1);
	}
	exec_body(rt, sc, def->a);
	memcpy(rt->fail, outer, sizeof outer);
	rt->depth--;
	rt->out = saved;
	rt->train = saved_train;
	struct jstr *s = render_to_jstr(rt, &cap);
	ft_render_release(&cap);
	return mkstr(s);
}

static struct jval call_method(struct rt *rt, struct vmethod *m, struct args *a, const struct node *at);
static struct jval call_global(struct rt *rt, int id, struct args *a, const struct node *at);

static struct jval call(struct rt *rt, struct jval fn, struct args *a, const struct node *at)
{
	switch (fn.kind) {
	case V_MACRO: return call_macro(rt, (struct vmacro *)fn.macro, a, at);
	case V_METHOD: return call_method(rt, fn.m, a, at);
	case V_FUNC: return call_global(rt, fn.func, a, at);
	case V_UNDEF:
		rt_fail(rt, at, "'%s' is undefined", fn.undef_name ? fn.undef_name : "value");
	default:
		rt_fail(rt, at, "'%s' object is not callable", type_name(fn));
	}
}

static struct jval eval_filter_chain(struct rt *rt, struct scope *sc, const struct node *f,
				     struct jval base)
{
	struct jval v = f->a ? (f->a->kind == E_FILTER ? eval_filter_chain(rt, sc, f->a, base)
						     : eval(rt, sc, f->a))
			     : base;
	struct args a;
	eval_args(rt, sc, f, &a, 0);
	return apply_filter(rt, f->id, v, &a, f, sc);
}

static struct jval eval(struct rt *rt, struct scope *sc, const struct node *e)
{
	switch (e->kind) {
	case E_CONST:
		return e->cval;
	case E_NAME: {
		struct jval v;
		if (lookup(rt, sc, e->name, e->namelen, &v))
			return v;
		return undef(e->name);
	}
	case E_ATTR:
		return getattr_(rt, eval(rt, sc, e->a), e->name, e->namelen, e);
	case E_ITEM:
		return getitem_(rt, eval(rt, sc, e->a), eval(rt, sc, e->b), e);
	case E_SLICE: {
		struct jval obj = eval(rt, sc, e->a);
		struct jval a = e->b ? eval(rt, sc, e->b) : none();
		struct jval b = e->c ? eval(rt, sc, e->c) : none();
		struct jval c = e->d ? eval(rt, sc, e->d) : none();
		return slice_(rt, obj, a, b, c, e);
	}
	case E_CALL: {
		struct jval fn = eval(rt, sc, e->a);
		struct args a;
		eval_args(rt, sc, e, &a, 0);
		return call(rt, fn, &a, e);
	}
	case E_FILTER:
		return eval_filter_chain(rt, sc, e, undef(NULL));
	case E_TEST: {
		struct jval v = eval(rt, sc, e->a);
		struct args a;
		eval_args(rt, sc, e, &a, 0);
		bool r = apply_test(rt, e->id, v, &a, e);
		return mkbool(e->flag ? !r : r);
	}
	case E_BINOP:
		return arith(rt, e->op, eval(rt, sc, e->a), eval(rt, sc, e->b), e);
	case E_NEG: {
		struct jval v = eval(rt, sc, e->a);
		if (v.kind == V_INT || v.kind == V_BOOL)
			return mkint(-inum(v));
		if (v.kind == V_FLOAT)
			return mkfloat(-v.f);
		rt_fail(rt, e, "bad operand type for unary -: '%s'", type_name(v));
	}
	case E_POS: {
		struct jval v = eval(rt, sc, e->a);
		if (!is_num(v))
			rt_fail(rt, e, "bad operand type for unary +: '%s'", type_name(v));
		return v.kind == V_BOOL ? mkint(v.b) : v;
	}
	case E_NOT:
		return mkbool(!truthy(eval(rt, sc, e->a)));
	case E_AND: {
		struct jval a = eval(rt, sc, e->a);
		return truthy(a) ? eval(rt, sc, e->b) : a;
	}
	case E_OR: {
		struct jval a = eval(rt, sc, e->a);
		return truthy(a) ? a : eval(rt, sc, e->b);
	}
	case E_COMPARE: {
		const uint8_t *ops = (const uint8_t *)e->name;
		struct jval left = eval(rt, sc, e->a);
		for (int i = 0; i < e->n; i++) {
			struct jval right = eval(rt, sc, e->list[i]);
			bool r;
			switch (ops[i]) {
			case CMP_EQ: r = equals(rt, left, right); break;
			case CMP_NE: r = !equals(rt, left, right); break;
			case CMP_LT: r = compare(rt, left, right, e) < 0; break;
			case CMP_LE: r = compare(rt, left, right, e) <= 0; break;
			case CMP_GT: r = compare(rt, left, right, e) > 0; break;
			case CMP_GE: r = compare(rt, left, right, e) >= 0; break;
			case CMP_IN: r = contains(rt, right, left, e); break;
			default: r = !contains(rt, right, left, e); break;
			}
			if (!r)
				return mkbool(false);
			left = right;
		}
		return mkbool(true);
	}
	case E_COND:
		if (truthy(eval(rt, sc, e->a)))
			return eval(rt, sc, e->b);
		return e->c ? eval(rt, sc, e->c) : undef(NULL);
	case E_LIST:
	case E_TUPLE: {
		struct vlist *l = newlist(rt, (size_t)e->n);
		for (int i = 0; i < e->n; i++)
			l->items[i] = eval(rt, sc, e->list[i]);
		l->tuple = e->kind == E_TUPLE;
		return mklist(l);
	}
	case E_DICT: {
		struct vdict *d = newdict(rt, (size_t)e->n / 2);
		for (int i = 0; i + 1 < e->n; i += 2)
			dict_set(rt, d, eval(rt, sc, e->list[i]), eval(rt, sc, e->list[i + 1]));
		struct jval v = { .kind = V_DICT };
		v.d = d;
		return v;
	}
	default:
		rt_fail(rt, e, "not an expression");
	}
}

/* ---- statements ---- */

enum { EXEC_OK = 0, EXEC_BREAK = 1, EXEC_CONTINUE = 2 };

static void assign_targets(struct rt *rt, struct scope *sc, const struct node *st, struct jval v)
{
	if (st->nnames == 1) {
		scope_set(rt, sc, st->names[0], v);
		return;
	}
	struct vlist *l = to_list(rt, v, st);
	if ((int)l->n != st->nnames)
		rt_fail(rt, st, "%s values to unpack (expected %d, got %zu)",
			(int)l->n > st->nnames ? "too many" : "not enough", st->nnames, l->n);
	for (int i = 0; i < st->nnames; i++)
		scope_set(rt, sc, st->names[i], l->items[i]);
}

static int exec_for(struct rt *rt, struct scope *sc, const struct node *st)
{
	struct vlist *items = to_list(rt, eval(rt, sc, st->a), st);
	if (st->flag) {
		struct vlist *kept = newlist(rt, items->n);
		kept->n = 0;
		for (size_t i = 0; i < items->n; i++) {
			struct scope *it = push_scope(rt, sc);
			assign_targets(rt, it, st, items->items[i]);
			if (truthy(eval(rt, it, st->b)))
				kept->items[kept->n++] = items->items[i];
		}
		items = kept;
	}
	if (!items->n) {
		if (st->d)
			return exec_body(rt, sc, st->d);
		return EXEC_OK;
	}
	struct jval outer_loop;
	int depth = 1;
	if (lookup(rt, sc, "loop", 4, &outer_loop) && outer_loop.kind == V_LOOP)
		depth = outer_loop.loop->depth + 1;
	struct loopinfo *L = ralloc(rt, sizeof *L);
	L->length = (int64_t)items->n;
	L->depth = depth;
	struct jval loopv = { .kind = V_LOOP };
	loopv.loop = L;
	for (size_t i = 0; i < items->n; i++) {
		L->index0 = (int64_t)i;
		L->has_prev = i > 0;
		L->has_next = i + 1 < items->n;
		if (L->has_prev)
			L->prev = items->items[i - 1];
		if (L->has_next)
			L->next = items->items[i + 1];
		struct scope *it = push_scope(rt, sc);
		scope_set(rt, it, "loop", loopv);
		assign_targets(rt, it, st, items->items[i]);
		int rc = exec_body(rt, it, st->c);
		if (rc == EXEC_BREAK)
			break;
	}
	return EXEC_OK;
}

static struct jstr *capture(struct rt *rt, struct scope *sc, const struct node *body)
{
	struct ft_render cap, *saved = rt->out;
	ft_render_init(&cap);
	rt->out = &cap;
	jmp_buf outer;
	memcpy(outer, rt->fail, sizeof outer);
	if (setjmp(rt->fail)) {
		ft_render_release(&cap);
		rt->out = saved;
		memcpy(rt->fail, outer, sizeof outer);
		longjmp(rt->fail, 1);
	}
	exec_body(rt, sc, body);
	memcpy(rt->fail, outer, sizeof outer);
	rt->out = saved;
	struct jstr *s = render_to_jstr(rt, &cap);
	ft_render_release(&cap);
	return s;
}

static int exec_stmt(struct rt *rt, struct scope *sc, const struct node *st)
{
	switch (st->kind) {
	case N_DATA:
		put(rt, rt->out, &st->text, rt->train);
		return EXEC_OK;
	case N_OUTPUT:
		put(rt, rt->out, to_str(rt, eval(rt, sc, st->a)), rt->train);
		return EXEC_OK;
	case N_IF:
		for (;;) {
			if (truthy(eval(rt, sc, st->a)))
				return exec_body(rt, sc, st->b);
			if (!st->c)
				return EXEC_OK;
			if (st->c->kind != N_IF)
				return exec_body(rt, sc, st->c);
			st = st->c;
		}
	case N_FOR:
		return exec_for(rt, sc, st);
	case N_SET: {
		struct jval v = eval(rt, sc, st->a);
		if (st->flag) {
			struct jval ns;
			if (!lookup(rt, sc, st->name, strlen(st->name), &ns) || ns.kind != V_NS)
				rt_fail(rt, st, "cannot assign attribute on non-namespace object");
			dict_set(rt, ns.d, mkstr(lit(rt, st->names[0], strlen(st->names[0]))), v);
			return EXEC_OK;
		}
		assign_targets(rt, sc, st, v);
		return EXEC_OK;
	}
	case N_SETBLOCK: {
		struct jval v = mkstr(capture(rt, sc, st->a));
		if (st->b)
			v = eval_filter_chain(rt, sc, st->b, v);
		scope_set(rt, sc, st->names[0], v);
		return EXEC_OK;
	}
	case N_FILTERBLOCK: {
		struct jval v = eval_filter_chain(rt, sc, st->b, mkstr(capture(rt, sc, st->a)));
		put(rt, rt->out, to_str(rt, v), rt->train);
		return EXEC_OK;
	}
	case N_MACRO: {
		struct vmacro *m = ralloc(rt, sizeof *m);
		m->def = st;
		m->closure = sc;
		struct jval v = { .kind = V_MACRO };
		v.macro = (struct node *)m;
		scope_set(rt, sc, st->name, v);
		return EXEC_OK;
	}
	case N_GENERATION: {
		unsigned saved = rt->train;
		rt->train = FT_SPAN_TRAIN;
		int rc = exec_body(rt, sc, st->a);
		rt->train = saved;
		return rc;
	}
	case N_BREAK:
		return EXEC_BREAK;
	case N_CONTINUE:
		return EXEC_CONTINUE;
	case N_BODY:
		return exec_body(rt, sc, st);
	default:
		rt_fail(rt, st, "not a statement");
	}
}

static int exec_body(struct rt *rt, struct scope *sc, const struct node *body)
{
	for (int i = 0; i < body->n; i++) {
		int rc = exec_stmt(rt, sc, body->list[i]);
		if (rc)
			return rc;
	}
	return EXEC_OK;
}

/* ---- Python string methods ---- */

static bool in_chars(const struct jstr *chars, int32_t cp)
{
	if (!chars)
		return ft_utf8_isspace(cp);
	for (size_t i = 0; i < chars->len;) {
		int32_t c;
		i += (size_t)ft_utf8_decode(chars->p + i, chars->len - i, &c);
		if (c == cp)
			return true;
	}
	return false;
}

static struct jstr *strip(struct rt *rt, const struct jstr *s, const struct jstr *chars, bool left,
			  bool right)
{
	size_t a = 0, b = s->len;
	while (left && a < b) {
		int32_t cp;
		int k = ft_utf8_decode(s->p + a, b - a, &cp);
		if (!in_chars(chars, cp))
			break;
		a += (size_t)k;
	}
	while (right && b > a) {
		size_t q = b - 1;
		while (q > a && ((unsigned char)s->p[q] & 0xC0) == 0x80)
			q--;
		int32_t cp;
		ft_utf8_decode(s->p + q, b - q, &cp);
		if (!in_chars(chars, cp))
			break;
		b = q;
	}
	return substr(rt, s, a, b - a);
}

static struct jstr *case_map(struct rt *rt, const struct jstr *s, int mode)
{
	/* mode: 0 upper, 1 lower, 2 str.title, 3 capitalize, 4 jinja title */
	struct ft_buf b;
	ft_buf_init(&b, 0);
	int rc = 0;
	bool prev_cased = false, first = true, word_start = true;
	for (size_t i = 0; i < s->len && !rc;) {
		int32_t cp, out;
		i += (size_t)ft_utf8_decode(s->p + i, s->len - i, &cp);
		switch (mode) {
		case 0: out = utf8proc_toupper(cp); break;
		case 1: out = utf8proc_tolower(cp); break;
		case 2:
			out = prev_cased ? utf8proc_tolower(cp) : utf8proc_totitle(cp);
			{
				utf8proc_category_t c = utf8proc_category(cp);
				prev_cased = c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL ||
					     c == UTF8PROC_CATEGORY_LT;
			}
			break;
		case 3: out = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp); break;
		default:
			/* jinja's title: words start after '-', whitespace, ( { [ < */
			out = word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
			word_start = cp == '-' || ft_utf8_isspace(cp) || cp == '(' || cp == '{' ||
				     cp == '[' || cp == '<';
			break;
		}
		first = false;
		char enc[4];
		rc = ft_buf_append(&b, enc, (size_t)ft_utf8_encode(out, enc));
	}
	if (rc) {
		ft_buf_release(&b);
		rt_fail(rt, NULL, "out of memory");
	}
	char *p = ralloc(rt, b.len + 1);
	memcpy(p, b.data ? b.data : "", b.len);
	struct jstr *r = derived(rt, p, b.len, s);
	ft_buf_release(&b);
	return r;
}

static struct jval split(struct rt *rt, const struct jstr *s, struct jval sepv, int64_t maxsplit,
			 bool from_right, const struct node *at)
{
	size_t cap = 8, n = 0;
	struct jval *out = ralloc(rt, cap * sizeof *out);
#define PUSH(x) do { \
		if (n == cap) { \
			struct jval *no = ralloc(rt, cap * 2 * sizeof *no); \
			memcpy(no, out, n * sizeof *no); \
			out = no; \
			cap *= 2; \
		} \
		out[n++] = (x); \
	} while (0)
	if (sepv.kind == V_NONE || sepv.kind == V_UNDEF) {
		/* runs of whitespace; leading/trailing ignored */
		if (from_right)
			rt_fail(rt, at, "rsplit() without a separator is not supported");
		size_t i = 0;
		int64_t splits = 0;
		while (i < s->len) {
			int32_t cp;
			int k;
			while (i < s->len && (k = ft_utf8_decode(s->p + i, s->len - i, &cp)) &&
			       ft_utf8_isspace(cp))
				i += (size_t)k;
			if (i >= s->len)
				break;
			if (maxsplit >= 0 && splits >= maxsplit) {
				size_t e = s->len;
				while (e > i) {
					size_t q = e - 1;
					while (q > i && ((unsigned char)s->p[q] & 0xC0) == 0x80)
						q--;
					ft_utf8_decode(s->p + q, e - q, &cp);
					if (!ft_utf8_isspace(cp))
						break;
					e = q;
				}
				PUSH(mkstr(substr(rt, s, i, e - i)));
				break;
			}
			size_t b = i;
			while (i < s->len && (k = ft_utf8_decode(s->p + i, s->len - i, &cp)) &&
			       !ft_utf8_isspace(cp))
				i += (size_t)k;
			PUSH(mkstr(substr(rt, s, b, i - b)));
			splits++;
		}
	} else {
		if (sepv.kind != V_STR)
			rt_fail(rt, at, "must be str or None, not %s", type_name(sepv));
		const struct jstr *sep = sepv.s;
		if (!sep->len)
			rt_fail(rt, at, "empty separator");
		if (!from_right) {
			size_t i = 0;
			int64_t splits = 0;
			for (;;) {
				const char *hit = maxsplit >= 0 && splits >= maxsplit ? NULL :
						  memmem(s->p + i, s->len - i, sep->p, sep->len);
				if (!hit) {
					PUSH(mkstr(substr(rt, s, i, s->len - i)));
					break;
				}
				size_t h = (size_t)(hit - s->p);
				PUSH(mkstr(substr(rt, s, i, h - i)));
				i = h + sep->len;
				splits++;
			}
		} else {
			/* collect from the right, then reverse */
			size_t e = s->len;
			int64_t splits = 0;
			for (;;) {
				size_t h = SIZE_MAX;
				if (!(maxsplit >= 0 && splits >= maxsplit) && e >= sep->len)
					for (size_t q = e - sep->len + 1; q-- > 0;)
						if (!memcmp(s->p + q, sep->p, sep->len)) {
							h = q;
							break;
						}
				if (h == SIZE_MAX) {
					PUSH(mkstr(substr(rt, s, 0, e)));
					break;
				}
				PUSH(mkstr(substr(rt, s, h + sep->len, e - h - sep->len)));
				e = h;
				splits++;
			}
			for (size_t i = 0; i < n / 2; i++) {
				struct jval t = out[i];
				out[i] = out[n - 1 - i];
				out[n - 1 - i] = t;
			}
		}
	}
#undef PUSH
	struct vlist *l = newlist(rt, n);
	memcpy(l->items, out, n * sizeof *out);
	return mklist(l);
}

static struct jval replace(struct rt *rt, const struct jstr *s, const struct jstr *old,
			   const struct jstr *new_, int64_t count)
{
	struct sb b;
	sb_init(&b);
	size_t i = 0;
	int64_t done = 0;
	if (!old->len) {
		/* Python inserts new between every character */
		size_t n = ft_utf8_count(s->p, s->len);
		for (size_t k = 0; k <= n; k++) {
			if (count < 0 || done < count) {
				put(rt, &b.r, new_, 0);
				done++;
			}
			if (k < n) {
				int32_t cp;
				int len = ft_utf8_decode(s->p + i, s->len - i, &cp);
				put(rt, &b.r, substr(rt, s, i, (size_t)len), 0);
				i += (size_t)len;
			}
		}
		if (b.r.text.len > MAX_STRING)
			rt_fail(rt, NULL, "string too long");
		return mkstr(sb_done(rt, &b));
	}
	for (;;) {
		const char *hit = count >= 0 && done >= count ? NULL :
				  memmem(s->p + i, s->len - i, old->p, old->len);
		if (!hit) {
			put(rt, &b.r, substr(rt, s, i, s->len - i), 0);
			break;
		}
		size_t h = (size_t)(hit - s->p);
		put(rt, &b.r, substr(rt, s, i, h - i), 0);
		put(rt, &b.r, new_, 0);
		i = h + old->len;
		done++;
		if (b.r.text.len > MAX_STRING) {
			ft_render_release(&b.r);
			rt_fail(rt, NULL, "string too long");
		}
	}
	return mkstr(sb_done(rt, &b));
}

static struct jstr *need_str(struct rt *rt, struct jval v, const char *what, const struct node *at)
{
	if (v.kind != V_STR)
		rt_fail(rt, at, "%s must be str, not %s", what, type_name(v));
	return v.s;
}

static bool affix(struct rt *rt, const struct jstr *s, struct jval pre, bool end,
		  const struct node *at)
{
	if (pre.kind == V_LIST) {
		for (size_t i = 0; i < pre.l->n; i++)
			if (affix(rt, s, pre.l->items[i], end, at))
				return true;
		return false;
	}
	const struct jstr *p = need_str(rt, pre, end ? "endswith arg" : "startswith arg", at);
	if (p->len > s->len)
		return false;
	return !memcmp(end ? s->p + s->len - p->len : s->p, p->p, p->len);
}

static struct jval join(struct rt *rt, struct jval sep, struct jval seq, const struct node *at,
			const char *attribute, struct scope *sc);

static struct jval char_class(struct rt *rt, const struct jstr *s, int id)
{
	if (!s->len)
		return mkbool(false);
	bool any_cased = false;
	for (size_t i = 0; i < s->len;) {
		int32_t cp;
		i += (size_t)ft_utf8_decode(s->p + i, s->len - i, &cp);
		utf8proc_category_t c = utf8proc_category(cp);
		bool letter = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
		bool digit = c == UTF8PROC_CATEGORY_ND;
		switch (id) {
		case M_ISDIGIT: if (!digit) return mkbool(false); break;
		case M_ISALPHA: if (!letter) return mkbool(false); break;
		case M_ISALNUM: if (!letter && !digit) return mkbool(false); break;
		case M_ISSPACE: if (!ft_utf8_isspace(cp)) return mkbool(false); break;
		case M_ISUPPER:
			if (c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return mkbool(false);
			any_cased |= c == UTF8PROC_CATEGORY_LU;
			break;
		case M_ISLOWER:
			if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) return mkbool(false);
			any_cased |= c == UTF8PROC_CATEGORY_LL;
			break;
		}
	}
	if (id == M_ISUPPER || id == M_ISLOWER)
		return mkbool(any_cased);
	return mkbool(true);
}

static int64_t find(const struct jstr *s, const struct jstr *sub, bool last)
{
	/* result in code points, as Python */
	const char *hit = NULL;
	if (!last) {
		hit = sub->len ? memmem(s->p, s->len, sub->p, sub->len) : s->p;
	} else if (sub->len <= s->len) {
		for (size_t q = s->len - sub->len + 1; q-- > 0;)
			if (!memcmp(s->p + q, sub->p, sub->len)) {
				hit = s->p + q;
				break;
			}
	}
	if (!hit)
		return -1;
	return (int64_t)ft_utf8_count(s->p, (size_t)(hit - s->p));
}

static struct jval call_method(struct rt *rt, struct vmethod *m, struct args *a, const struct node *at)
{
	struct jval self = m->self;
	const struct jstr *s = self.kind == V_STR ? self.s : NULL;
	struct jval nil = none();
	switch (m->id) {
	case M_STRIP: case M_LSTRIP: case M_RSTRIP: {
		struct jval c = arg(a, 0, "chars", nil);
		const struct jstr *chars = c.kind == V_NONE ? NULL : need_str(rt, c, "chars", at);
		return mkstr(strip(rt, s, chars, m->id != M_RSTRIP, m->id != M_LSTRIP));
	}
	case M_SPLIT: case M_RSPLIT:
		return split(rt, s, arg(a, 0, "sep", nil), inum(arg(a, 1, "maxsplit", mkint(-1))),
			     m->id == M_RSPLIT, at);
	case M_STARTSWITH: case M_ENDSWITH:
		if (!a->npos)
			rt_fail(rt, at, "%s() takes at least 1 argument", method_names[m->id]);
		return mkbool(affix(rt, s, a->pos[0], m->id == M_ENDSWITH, at));
	case M_UPPER: return mkstr(case_map(rt, s, 0));
	case M_LOWER: return mkstr(case_map(rt, s, 1));
	case M_TITLE: return mkstr(case_map(rt, s, 2));
	case M_CAPITALIZE: return mkstr(case_map(rt, s, 3));
	case M_REPLACE:
		if (a->npos < 2)
			rt_fail(rt, at, "replace() takes at least 2 arguments");
		return replace(rt, s, need_str(rt, a->pos[0], "replace arg", at),
			       need_str(rt, a->pos[1], "replace arg", at),
			       inum(arg(a, 2, "count", mkint(-1))));
	case M_FIND: case M_RFIND:
		if (!a->npos)
			rt_fail(rt, at, "find() takes at least 1 argument");
		return mkint(find(s, need_str(rt, a->pos[0], "find arg", at), m->id == M_RFIND));
	case M_COUNT: {
		if (!a->npos)
			rt_fail(rt, at, "count() takes at least 1 argument");
		const struct jstr *sub = need_str(rt, a->pos[0], "count arg", at);
		if (!sub->len)
			return mkint((int64_t)ft_utf8_count(s->p, s->len) + 1);
		int64_t n = 0;
		for (const char *p = s->p; (p = memmem(p, s->len - (size_t)(p - s->p), sub->p, sub->len));
		     p += sub->len)
			n++;
		return mkint(n);
	}
	case M_JOIN:
		if (!a->npos)
			rt_fail(rt, at, "join() takes exactly one argument");
		return join(rt, self, a->pos[0], at, NULL, NULL);
	case M_SPLITLINES: {
		struct vlist *l = newlist(rt, ft_utf8_count(s->p, s->len) + 1);
		l->n = 0;
		size_t b = 0;
		for (size_t i = 0; i < s->len; i++)
			if (s->p[i] == '\n' || s->p[i] == '\r') {
				l->items[l->n++] = mkstr(substr(rt, s, b, i - b));
				if (s->p[i] == '\r' && i + 1 < s->len && s->p[i + 1] == '\n')
					i++;
				b = i + 1;
			}
		if (b < s->len)
			l->items[l->n++] = mkstr(substr(rt, s, b, s->len - b));
		return mklist(l);
	}
	case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISUPPER:
	case M_ISLOWER:
		return char_class(rt, s, m->id);
	case M_ITEMS: case M_KEYS: case M_VALUES: {
		struct vlist *keys = to_list(rt, self, at);
		if (m->id == M_KEYS)
			return mklist(keys);
		struct vlist *l = newlist(rt, keys->n);
		for (size_t i = 0; i < keys->n; i++) {
			bool found;
			struct jval v = getitem_value(rt, self, keys->items[i], &found);
			if (m->id == M_VALUES) {
				l->items[i] = v;
			} else {
				struct vlist *pair = newlist(rt, 2);
				pair->tuple = true;
				pair->items[0] = keys->items[i];
				pair->items[1] = v;
				l->items[i] = mklist(pair);
			}
		}
		return mklist(l);
	}
	case M_GET: {
		if (!a->npos)
			rt_fail(rt, at, "get expected at least 1 argument");
		bool found;
		struct jval v = getitem_value(rt, self, a->pos[0], &found);
		return found ? v : arg(a, 1, "default", nil);
	}
	case M_INDEX: {
		struct vlist *l = to_list(rt, self, at);
		for (size_t i = 0; a->npos && i < l->n; i++)
			if (equals(rt, l->items[i], a->pos[0]))
				return mkint((int64_t)i);
		rt_fail(rt, at, "value is not in list");
	}
	case M_LCOUNT: {
		struct vlist *l = to_list(rt, self, at);
		int64_t n = 0;
		for (size_t i = 0; a->npos && i < l->n; i++)
			n += equals(rt, l->items[i], a->pos[0]);
		return mkint(n);
	}
	case M_CYCLE:
		if (!a->npos)
			rt_fail(rt, at, "no items for cycling given");
		return a->pos[self.loop->index0 % a->npos];
	}
	rt_fail(rt, at, "unknown method");
}

/* ---- globals ---- */

static struct jval call_global(struct rt *rt, int id, struct args *a, const struct node *at)
{
	switch (id) {
	case G_RANGE: {
		int64_t start = 0, stop, step = 1;
		if (a->npos == 1)
			stop = inum(a->pos[0]);
		else if (a->npos >= 2) {
			start = inum(a->pos[0]);
			stop = inum(a->pos[1]);
			if (a->npos >= 3)
				step = inum(a->pos[2]);
		} else
			rt_fail(rt, at, "range expected at least 1 argument, got 0");
		for (int i = 0; i < a->npos; i++)
			if (a->pos[i].kind != V_INT && a->pos[i].kind != V_BOOL)
				rt_fail(rt, at, "'%s' object cannot be interpreted as an integer",
					type_name(a->pos[i]));
		if (step == 0)
			rt_fail(rt, at, "range() arg 3 must not be zero");
		int64_t n = 0;
		if (step > 0 && stop > start)
			n = (stop - start + step - 1) / step;
		else if (step < 0 && stop < start)
			n = (start - stop - step - 1) / -step;
		if (n > MAX_RANGE)
			rt_fail(rt, at, "range too big, maximum size for range is %d", MAX_RANGE);
		struct vlist *l = newlist(rt, (size_t)n);
		for (int64_t i = 0; i < n; i++)
			l->items[i] = mkint(start + i * step);
		return mklist(l);
	}
	case G_DICT:
	case G_NAMESPACE: {
		struct vdict *d = newdict(rt, 4);
		if (a->npos > 1)
			rt_fail(rt, at, "%s expected at most 1 positional argument",
				id == G_DICT ? "dict" : "namespace");
		if (a->npos == 1) {
			struct jval src = a->pos[0];
			if (is_map(src) || src.kind == V_NS) {
				struct vlist *keys = to_list(rt, src, at);
				for (size_t i = 0; i < keys->n; i++) {
					bool found;
					struct jval v = src.kind == V_NS ?
						dict_find(rt, src.d, keys->items[i])->val :
						getitem_value(rt, src, keys->items[i], &found);
					dict_set(rt, d, keys->items[i], v);
				}
			} else {
				struct vlist *pairs = to_list(rt, src, at);
				for (size_t i = 0; i < pairs->n; i++) {
					struct vlist *p = to_list(rt, pairs->items[i], at);
					if (p->n != 2)
						rt_fail(rt, at, "dictionary update sequence element #%zu has length %zu; 2 is required",
							i, p->n);
					dict_set(rt, d, p->items[0], p->items[1]);
				}
			}
		}
		for (int k = 0; k < a->nkw; k++)
			dict_set(rt, d, mkstr(lit(rt, a->kwn[k], strlen(a->kwn[k]))), a->kwv[k]);
		struct jval v = { .kind = id == G_DICT ? V_DICT : V_NS };
		v.d = d;
		return v;
	}
	case G_RAISE: {
		struct jstr *msg = a->npos ? to_str(rt, a->pos[0]) : lit(rt, "", 0);
		rt_fail(rt, at, "%.*s", (int)msg->len, msg->p);
	}
	case G_STRFTIME: {
		if (!a->npos)
			rt_fail(rt, at, "strftime_now() takes a format");
		struct jstr *fmt = need_str(rt, a->pos[0], "format", at);
		char f[256], out[512];
		snprintf(f, sizeof f, "%.*s", (int)fmt->len, fmt->p);
		/* SOURCE_DATE_EPOCH pins the date for reproducible output */
		const char *sde = getenv("SOURCE_DATE_EPOCH");
		time_t now = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
		struct tm tm;
		if (!(sde && *sde ? gmtime_r(&now, &tm) : localtime_r(&now, &tm)))
			rt_fail(rt, at, "strftime_now: cannot convert the time");
		size_t n = strftime(out, sizeof out, f, &tm);
		return mkstr(lit_copy(rt, out, n));
	}
	}
	rt_fail(rt, at, "unknown function");
}

/* ---- filters ---- */

enum filter_id {
	F_ABS, F_ATTR, F_CAPITALIZE, F_COUNT, F_D, F_DEFAULT, F_DICTSORT, F_E, F_ESCAPE, F_FIRST,
	F_FLOAT, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER,
	F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE, F_REVERSE, F_ROUND, F_SAFE,
	F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE, F_TOJSON, F_TRIM, F_UNIQUE,
	F_UPPER, F_WORDCOUNT, F_COUNT_
};

static const char *const filter_names[] = {
	"abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
	"float", "format", "indent", "int", "items", "join", "last", "length", "list", "lower",
	"map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe",
	"select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique",
	"upper", "wordcount",
};

int jinja_filter_id(const char *name, size_t len)
{
	for (int i = 0; i < F_COUNT_; i++)
		if (strlen(filter_names[i]) == len && !memcmp(filter_names[i], name, len))
			return i;
	return -1;
}

enum test_id {
	T_BOOLEAN, T_CALLABLE, T_DEFINED, T_DIVISIBLEBY, T_EQ, T_EQUALTO, T_EVEN, T_FALSE,
	T_FLOAT, T_GE, T_GREATERTHAN, T_GT, T_IN, T_INTEGER, T_ITERABLE, T_LE, T_LESSTHAN,
	T_LOWER, T_LT, T_MAPPING, T_NE, T_NONE, T_NUMBER, T_ODD, T_SAMEAS, T_SEQUENCE,
	T_STRING, T_TRUE, T_UNDEFINED, T_UPPER, T_EQ2, T_NE2, T_LT2, T_LE2, T_GT2, T_GE2, T_COUNT_
};

static const char *const test_names[] = {
	"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "even", "false",
	"float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan",
	"lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence",
	"string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=",
};

int jinja_test_id(const char *name, size_t len)
{
	for (int i = 0; i < T_COUNT_; i++)
		if (strlen(test_names[i]) == len && !memcmp(test_names[i], name, len))
			return i;
	return -1;
}

/* Attribute path "a.b.0" on a value, as jinja's make_attrgetter. */
static struct jval attr_path(struct rt *rt, struct jval v, struct jval path, const struct node *at)
{
	if (path.kind == V_INT)
		return getitem_(rt, v, path, at);
	const struct jstr *p = need_str(rt, path, "attribute", at);
	size_t i = 0;
	while (i <= p->len) {
		const char *dot = memchr(p->p + i, '.', p->len - i);
		size_t e = dot ? (size_t)(dot - p->p) : p->len;
		struct jval key;
		bool digits = e > i;
		for (size_t k = i; k < e; k++)
			digits &= isdigit((unsigned char)p->p[k]) != 0;
		if (digits)
			key = mkint(strtoll(p->p + i, NULL, 10));
		else
			key = mkstr(lit(rt, p->p + i, e - i));
		if (v.kind == V_UNDEF)
			return v;
		v = getitem_(rt, v, key, at);
		i = e + 1;
		if (!dot)
			break;
	}
	return v;
}

static struct jval join(struct rt *rt, struct jval sep, struct jval seq, const struct node *at,
			const char *attribute, struct scope *sc)
{
	struct vlist *l = to_list(rt, seq, at);
	struct jstr *s = to_str(rt, sep);
	struct sb b;
	sb_init(&b);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			put(rt, &b.r, s, 0);
		struct jval item = l->items[i];
		if (attribute)
			item = attr_path(rt, item, mkstr(lit(rt, attribute, strlen(attribute))), at);
		put(rt, &b.r, to_str(rt, item), 0);
		if (b.r.text.len > MAX_STRING) {
			ft_render_release(&b.r);
			rt_fail(rt, at, "string too long");
		}
	}
	return mkstr(sb_done(rt, &b));
}

/* ordering for sort/min/max/unique: strings case-insensitive unless asked */
static _Thread_local struct rt *sort_rt;
static _Thread_local bool sort_case;
static _Thread_local const struct node *sort_at;

static int key_cmp(struct jval a, struct jval b)
{
	if (!sort_case && a.kind == V_STR && b.kind == V_STR) {
		struct jstr *x = case_map(sort_rt, a.s, 1), *y = case_map(sort_rt, b.s, 1);
		return compare(sort_rt, mkstr(x), mkstr(y), sort_at);
	}
	return compare(sort_rt, a, b, sort_at);
}

struct sortitem {
	struct jval key, val;
	size_t idx;
};

static int sortitem_cmp(const void *x, const void *y)
{
	const struct sortitem *a = x, *b = y;
	int c = key_cmp(a->key, b->key);
	return c ? c : (a->idx < b->idx ? -1 : a->idx > b->idx);  /* stable */
}

static struct vlist *sorted(struct rt *rt, struct vlist *l, bool reverse, bool case_sensitive,
			    struct jval attribute, const struct node *at)
{
	struct sortitem *it = ralloc(rt, (l->n + 1) * sizeof *it);
	for (size_t i = 0; i < l->n; i++) {
		it[i].val = l->items[i];
		it[i].key = attribute.kind == V_NONE ? l->items[i] : attr_path(rt, l->items[i], attribute, at);
		it[i].idx = reverse ? l->n - i : i;
	}
	sort_rt = rt;
	sort_case = case_sensitive;
	sort_at = at;
	qsort(it, l->n, sizeof *it, sortitem_cmp);
	struct vlist *out = newlist(rt, l->n);
	for (size_t i = 0; i < l->n; i++)
		out->items[i] = it[reverse ? l->n - 1 - i : i].val;
	return out;
}

static struct jval select_(struct rt *rt, struct jval v, struct args *a, bool want, bool byattr,
			   const struct node *at)
{
	struct vlist *l = to_list(rt, v, at);
	struct vlist *out = newlist(rt, l->n);
	out->n = 0;
	int first = byattr ? 1 : 0;
	struct jval attr = byattr ? arg(a, 0, "attribute", none()) : none();
	int tid = -1;
	struct args targs = { 0 };
	if (a->npos > first) {
		const struct jstr *tn = need_str(rt, a->pos[first], "test name", at);
		tid = jinja_test_id(tn->p, tn->len);
		if (tid < 0)
			rt_fail(rt, at, "no test named '%.*s'", (int)tn->len, tn->p);
		targs.pos = a->pos + first + 1;
		targs.npos = a->npos - first - 1;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct jval x = byattr ? attr_path(rt, l->items[i], attr, at) : l->items[i];
		bool r = tid < 0 ? truthy(x) : apply_test(rt, tid, x, &targs, at);
		if (r == want)
			out->items[out->n++] = l->items[i];
	}
	return mklist(out);
}

static struct jval to_int(struct rt *rt, struct jval v, struct jval dflt)
{
	if (v.kind == V_INT)
		return v;
	if (v.kind == V_BOOL)
		return mkint(v.b);
	if (v.kind == V_FLOAT)
		return isfinite(v.f) ? mkint((int64_t)v.f) : dflt;
	if (v.kind == V_STR) {
		char tmp[64];
		snprintf(tmp, sizeof tmp, "%.*s", (int)(v.s->len < 63 ? v.s->len : 63), v.s->p);
		char *end;
		errno = 0;
		long long i = strtoll(tmp, &end, 10);
		while (*end == ' ')
			end++;
		if (end != tmp && !*end && !errno)
			return mkint(i);
		double d = strtod(tmp, &end);
		while (*end == ' ')
			end++;
		if (end != tmp && !*end && isfinite(d))
			return mkint((int64_t)d);
	}
	return dflt;
}

static struct jval apply_filter(struct rt *rt, int id, struct jval v, struct args *a,
				const struct node *at, struct scope *sc)
{
	struct jval nil = none();
	switch (id) {
	case F_ABS:
		if (v.kind == V_INT || v.kind == V_BOOL)
			return mkint(llabs(inum(v)));
		if (v.kind == V_FLOAT)
			return mkfloat(fabs(v.f));
		rt_fail(rt, at, "bad operand type for abs(): '%s'", type_name(v));
	case F_ATTR: {
		struct jval name = arg(a, 0, "name", nil);
		const struct jstr *n = need_str(rt, name, "attribute name", at);
		return getattr_(rt, v, n->p, n->len, at);
	}
	case F_CAPITALIZE: return mkstr(case_map(rt, to_str(rt, v), 3));
	case F_COUNT: case F_LENGTH: return mkint(length(rt, v, at));
	case F_D: case F_DEFAULT: {
		bool boolean = truthy(arg(a, 1, "boolean", mkbool(false)));
		if (v.kind == V_UNDEF || (boolean && !truthy(v)))
			return arg(a, 0, "default_value", mkstr(lit(rt, "", 0)));
		return v;
	}
	case F_DICTSORT: {
		bool cs = truthy(arg(a, 0, "case_sensitive", mkbool(false)));
		struct jval by = arg(a, 1, "by", mkstr(lit(rt, "key", 3)));
		bool rev = truthy(arg(a, 2, "reverse", mkbool(false)));
		struct jval items = call_method(rt, &(struct vmethod){ v, M_ITEMS }, a, at);
		bool byval = by.kind == V_STR && str_eq(by.s, "value", 5);
		return mklist(sorted(rt, items.l, rev, cs, mkint(byval ? 1 : 0), at));
	}
	case F_E: case F_ESCAPE: {
		struct jstr *s = to_str(rt, v);
		struct ft_buf b;
		ft_buf_init(&b, 0);
		int rc = 0;
		for (size_t i = 0; i < s->len && !rc; i++) {
			switch (s->p[i]) {
			case '&': rc = ft_buf_puts(&b, "&amp;"); break;
			case '<': rc = ft_buf_puts(&b, "&lt;"); break;
			case '>': rc = ft_buf_puts(&b, "&gt;"); break;
			case '"': rc = ft_buf_puts(&b, "&#34;"); break;
			case '\'': rc = ft_buf_puts(&b, "&#39;"); break;
			default: rc = ft_buf_putc(&b, s->p[i]);
			}
		}
		char *p = ralloc(rt, b.len + 1);
		memcpy(p, b.data ? b.data : "", b.len);
		struct jstr *r = derived(rt, p, b.len, s);
		ft_buf_release(&b);
		return mkstr(r);
	}
	case F_FIRST: {
		struct vlist *l = to_list(rt, v, at);
		return l->n ? l->items[0] : undef("first");
	}
	case F_LAST: {
		struct vlist *l = to_list(rt, v, at);
		return l->n ? l->items[l->n - 1] : undef("last");
	}
	case F_FLOAT: {
		if (v.kind == V_FLOAT)
			return v;
		if (v.kind == V_INT || v.kind == V_BOOL)
			return mkfloat((double)inum(v));
		if (v.kind == V_STR) {
			char tmp[64], *end;
			snprintf(tmp, sizeof tmp, "%.*s", (int)(v.s->len < 63 ? v.s->len : 63), v.s->p);
			double d = strtod(tmp, &end);
			if (end != tmp && !*end)
				return mkfloat(d);
		}
		return arg(a, 0, "default", mkfloat(0.0));
	}
	case F_FORMAT: {
		struct vlist *l = newlist(rt, (size_t)a->npos);
		memcpy(l->items, a->pos, (size_t)a->npos * sizeof *a->pos);
		l->tuple = true;
		return percent_format(rt, to_str(rt, v), mklist(l), at);
	}
	case F_INDENT: {
		struct jval w = arg(a, 0, "width", mkint(4));
		bool first = truthy(arg(a, 1, "first", mkbool(false)));
		bool blank = truthy(arg(a, 2, "blank", mkbool(false)));
		struct jstr *pad = w.kind == V_STR ? w.s : NULL;
		char spaces[256];
		if (!pad) {
			int64_t n = inum(w);
			if (n < 0)
				n = 0;
			if (n > 255)
				n = 255;
			memset(spaces, ' ', (size_t)n);
			pad = lit_copy(rt, spaces, (size_t)n);
		}
		struct jstr *s = to_str(rt, v);
		struct sb b;
		sb_init(&b);
		size_t i = 0;
		bool line_first = true;
		while (i <= s->len) {
			const char *nl = memchr(s->p + i, '\n', s->len - i);
			size_t e = nl ? (size_t)(nl - s->p) : s->len;
			bool empty = e == i;
			if ((!line_first || first) && (blank || !empty))
				put(rt, &b.r, pad, 0);
			put(rt, &b.r, substr(rt, s, i, e - i + (nl ? 1 : 0)), 0);
			line_first = false;
			if (!nl)
				break;
			i = e + 1;
		}
		return mkstr(sb_done(rt, &b));
	}
	case F_INT: return to_int(rt, v, arg(a, 0, "default", mkint(0)));
	case F_ITEMS:
		if (v.kind == V_UNDEF)
			return mklist(newlist(rt, 0));
		if (!is_map(v))
			rt_fail(rt, at, "can only get item pairs from a mapping");
		return call_method(rt, &(struct vmethod){ v, M_ITEMS }, a, at);
	case F_JOIN: {
		struct jval attr = arg(a, 1, "attribute", nil);
		const char *an = NULL;
		if (attr.kind == V_STR)
			an = ft_arena_strndup(rt->arena, attr.s->p, attr.s->len);
		return join(rt, arg(a, 0, "d", mkstr(lit(rt, "", 0))), v, at, an, sc);
	}
	case F_LIST:
		if (v.kind == V_LIST && !v.l->tuple)
			return v;
		{
			struct vlist *src = to_list(rt, v, at), *l = newlist(rt, src->n);
			memcpy(l->items, src->items, src->n * sizeof *src->items);
			return mklist(l);
		}
	case F_LOWER: return mkstr(case_map(rt, to_str(rt, v), 1));
	case F_UPPER: return mkstr(case_map(rt, to_str(rt, v), 0));
	case F_TITLE: return mkstr(case_map(rt, to_str(rt, v), 4));
	case F_MAP: {
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		if (has_arg(a, -1, "attribute")) {
			struct jval attr = arg(a, -1, "attribute", nil);
			bool hasd = has_arg(a, -1, "default");
			struct jval d = arg(a, -1, "default", nil);
			for (size_t i = 0; i < l->n; i++) {
				out->items[i] = attr_path(rt, l->items[i], attr, at);
				if (hasd && out->items[i].kind == V_UNDEF)
					out->items[i] = d;
			}
			return mklist(out);
		}
		if (!a->npos)
			rt_fail(rt, at, "map requires a filter argument");
		const struct jstr *fn = need_str(rt, a->pos[0], "filter name", at);
		int fid = jinja_filter_id(fn->p, fn->len);
		if (fid < 0)
			rt_fail(rt, at, "no filter named '%.*s'", (int)fn->len, fn->p);
		struct args fa = { a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw };
		for (size_t i = 0; i < l->n; i++)
			out->items[i] = apply_filter(rt, fid, l->items[i], &fa, at, sc);
		return mklist(out);
	}
	case F_MAX: case F_MIN: {
		struct vlist *l = to_list(rt, v, at);
		if (!l->n)
			return undef(id == F_MAX ? "max" : "min");
		struct vlist *s = sorted(rt, l, false, truthy(arg(a, 0, "case_sensitive", mkbool(false))),
					 arg(a, 1, "attribute", nil), at);
		return id == F_MAX ? s->items[s->n - 1] : s->items[0];
	}
	case F_REJECT: return select_(rt, v, a, false, false, at);
	case F_REJECTATTR: return select_(rt, v, a, false, true, at);
	case F_SELECT: return select_(rt, v, a, true, false, at);
	case F_SELECTATTR: return select_(rt, v, a, true, true, at);
	case F_REPLACE: {
		struct jstr *s = to_str(rt, v);
		if (a->npos < 2)
			rt_fail(rt, at, "replace filter needs old and new");
		struct jval cnt = arg(a, 2, "count", nil);
		return replace(rt, s, to_str(rt, a->pos[0]), to_str(rt, a->pos[1]),
			       cnt.kind == V_NONE ? -1 : inum(cnt));
	}
	case F_REVERSE: {
		if (v.kind == V_STR)
			return slice_(rt, v, nil, nil, mkint(-1), at);
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		for (size_t i = 0; i < l->n; i++)
			out->items[i] = l->items[l->n - 1 - i];
		return mklist(out);
	}
	case F_ROUND: {
		int64_t prec = inum(arg(a, 0, "precision", mkint(0)));
		struct jval method = arg(a, 1, "method", mkstr(lit(rt, "common", 6)));
		double x = num(v), p = pow(10, (double)prec);
		if (!is_num(v))
			rt_fail(rt, at, "round filter needs a number");
		if (method.kind == V_STR && str_eq(method.s, "ceil", 4))
			return mkfloat(ceil(x * p) / p);
		if (method.kind == V_STR && str_eq(method.s, "floor", 5))
			return mkfloat(floor(x * p) / p);
		/* Python's round(): half to even on the decimal value */
		char tmp[64];
		snprintf(tmp, sizeof tmp, "%.*f", (int)(prec < 0 ? 0 : prec > 30 ? 30 : prec), x);
		return mkfloat(prec >= 0 ? strtod(tmp, NULL) : nearbyint(x * p) / p);
	}
	case F_SAFE: case F_STRING:
		return v.kind == V_STR ? v : mkstr(to_str(rt, v));
	case F_SORT: {
		struct vlist *l = to_list(rt, v, at);
		return mklist(sorted(rt, l, truthy(arg(a, 0, "reverse", mkbool(false))),
				     truthy(arg(a, 1, "case_sensitive", mkbool(false))),
				     arg(a, 2, "attribute", nil), at));
	}
	case F_SUM: {
		struct vlist *l = to_list(rt, v, at);
		struct jval attr = arg(a, 0, "attribute", nil);
		struct jval total = arg(a, 1, "start", mkint(0));
		for (size_t i = 0; i < l->n; i++)
			total = arith(rt, OP_ADD, total,
				      attr.kind == V_NONE ? l->items[i] : attr_path(rt, l->items[i], attr, at), at);
		return total;
	}
	case F_TOJSON: {
		struct jval ind = arg(a, 0, "indent", nil);
		return mkstr(tojson(rt, v, ind.kind == V_NONE ? -1 : (int)inum(ind), at));
	}
	case F_TRIM: {
		struct jval c = arg(a, 0, "chars", nil);
		return mkstr(strip(rt, to_str(rt, v), c.kind == V_NONE ? NULL : to_str(rt, c), true, true));
	}
	case F_UNIQUE: {
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		bool cs = truthy(arg(a, 0, "case_sensitive", mkbool(false)));
		struct jval attr = arg(a, 1, "attribute", nil);
		out->n = 0;
		sort_rt = rt;
		sort_case = cs;
		sort_at = at;
		for (size_t i = 0; i < l->n; i++) {
			struct jval k = attr.kind == V_NONE ? l->items[i] : attr_path(rt, l->items[i], attr, at);
			bool seen = false;
			for (size_t j = 0; j < out->n && !seen; j++) {
				struct jval kj = attr.kind == V_NONE ? out->items[j] : attr_path(rt, out->items[j], attr, at);
				if (!cs && k.kind == V_STR && kj.kind == V_STR)
					seen = equals(rt, mkstr(case_map(rt, k.s, 1)), mkstr(case_map(rt, kj.s, 1)));
				else
					seen = equals(rt, k, kj);
			}
			if (!seen)
				out->items[out->n++] = l->items[i];
		}
		return mklist(out);
	}
	case F_WORDCOUNT: {
		struct jval parts = split(rt, to_str(rt, v), nil, -1, false, at);
		return mkint((int64_t)parts.l->n);
	}
	}
	rt_fail(rt, at, "unknown filter");
}

static bool apply_test(struct rt *rt, int id, struct jval v, struct args *a, const struct node *at)
{
	struct jval x = a->npos ? a->pos[0] : undef(NULL);
	switch (id) {
	case T_BOOLEAN: return v.kind == V_BOOL;
	case T_CALLABLE: return v.kind == V_MACRO || v.kind == V_FUNC || v.kind == V_METHOD;
	case T_DEFINED: return v.kind != V_UNDEF;
	case T_UNDEFINED: return v.kind == V_UNDEF;
	case T_DIVISIBLEBY:
		if (inum(x) == 0)
			rt_fail(rt, at, "integer division or modulo by zero");
		return inum(v) % inum(x) == 0;
	case T_EQ: case T_EQUALTO: case T_EQ2: return equals(rt, v, x);
	case T_NE: case T_NE2: return !equals(rt, v, x);
	case T_EVEN: return is_num(v) && inum(v) % 2 == 0;
	case T_ODD: return is_num(v) && inum(v) % 2 != 0;
	case T_FALSE: return v.kind == V_BOOL && !v.b;
	case T_TRUE: return v.kind == V_BOOL && v.b;
	case T_FLOAT: return v.kind == V_FLOAT;
	case T_INTEGER: return v.kind == V_INT;
	case T_NUMBER: return is_num(v);
	case T_GE: case T_GE2: return compare(rt, v, x, at) >= 0;
	case T_GT: case T_GREATERTHAN: case T_GT2: return compare(rt, v, x, at) > 0;
	case T_LE: case T_LE2: return compare(rt, v, x, at) <= 0;
	case T_LT: case T_LESSTHAN: case T_LT2: return compare(rt, v, x, at) < 0;
	case T_IN: return contains(rt, x, v, at);
	case T_ITERABLE:
		return v.kind == V_STR || v.kind == V_LIST || v.kind == V_DICT || v.kind == V_JSON ||
		       v.kind == V_UNDEF;
	case T_SEQUENCE:
		return v.kind == V_STR || v.kind == V_LIST || v.kind == V_DICT || v.kind == V_JSON;
	case T_MAPPING: return is_map(v);
	case T_NONE: return v.kind == V_NONE;
	case T_STRING: return v.kind == V_STR;
	case T_LOWER:
		return v.kind == V_STR && char_class(rt, v.s, M_ISLOWER).b;
	case T_UPPER:
		return v.kind == V_STR && char_class(rt, v.s, M_ISUPPER).b;
	case T_SAMEAS:
		if (v.kind != x.kind)
			return false;
		if (v.kind == V_NONE || v.kind == V_UNDEF)
			return true;
		if (v.kind == V_BOOL)
			return v.b == x.b;
		if (v.kind == V_INT)
			return v.i == x.i;
		if (v.kind == V_JSON)
			return v.j == x.j;
		return v.s == x.s;
	}
	rt_fail(rt, at, "unknown test");
}

/* Python's printf-style '%' formatting for the conversions templates use. */
static struct jval percent_format(struct rt *rt, struct jstr *fmt, struct jval args,
				  const struct node *at)
{
	struct vlist *l;
	if (args.kind == V_LIST && args.l->tuple) {
		l = args.l;
	} else {
		l = newlist(rt, 1);
		l->items[0] = args;
	}
	size_t ai = 0;
	struct sb b;
	sb_init(&b);
	size_t i = 0, run = 0;
	while (i < fmt->len) {
		if (fmt->p[i] != '%') {
			i++;
			continue;
		}
		put(rt, &b.r, substr(rt, fmt, run, i - run), 0);
		i++;
		char spec[32];
		size_t k = 0;
		spec[k++] = '%';
		while (i < fmt->len && strchr("-+ #0123456789.", fmt->p[i]) && k < sizeof spec - 2)
			spec[k++] = fmt->p[i++];
		if (i >= fmt->len) {
			ft_render_release(&b.r);
			rt_fail(rt, at, "incomplete format");
		}
		char conv = fmt->p[i++];
		run = i;
		if (conv == '%') {
			put_lit(rt, &b.r, "%", 1);
			continue;
		}
		if (ai >= l->n) {
			ft_render_release(&b.r);
			rt_fail(rt, at, "not enough arguments for format string");
		}
		struct jval x = l->items[ai++];
		char tmp[128];
		int n;
		switch (conv) {
		case 's':
			put(rt, &b.r, to_str(rt, x), 0);
			continue;
		case 'r': {
			struct ft_render *saved = rt->out;
			repr_into(rt, &b.r, x, 0);
			rt->out = saved;
			continue;
		}
		case 'd': case 'i':
			spec[k++] = 'l';
			spec[k++] = 'l';
			spec[k++] = 'd';
			spec[k] = 0;
			n = snprintf(tmp, sizeof tmp, spec, (long long)inum(x));
			break;
		case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
			spec[k++] = conv;
			spec[k] = 0;
			n = snprintf(tmp, sizeof tmp, spec, num(x));
			break;
		case 'x': case 'X': case 'o':
			spec[k++] = 'l';
			spec[k++] = 'l';
			spec[k++] = conv;
			spec[k] = 0;
			n = snprintf(tmp, sizeof tmp, spec, (long long)inum(x));
			break;
		default:
			ft_render_release(&b.r);
			rt_fail(rt, at, "unsupported format character '%c'", conv);
		}
		if (n < 0)
			n = 0;
		if ((size_t)n >= sizeof tmp)
			n = sizeof tmp - 1;
		put(rt, &b.r, lit_copy(rt, tmp, (size_t)n), 0);
	}
	put(rt, &b.r, substr(rt, fmt, run, fmt->len - run), 0);
	if (ai < l->n && !(args.kind == V_DICT)) {
		ft_render_release(&b.r);
		rt_fail(rt, at, "not all arguments converted during string formatting");
	}
	return mkstr(sb_done(rt, &b));
}

/* ---- variables ---- */

struct ft_tpl_vars *ft_tpl_vars_new(void)
{
	struct ft_tpl_vars *v = calloc(1, sizeof *v);
	if (v) {
		ft_arena_init(&v->arena, 0);
		ft_arena_init(&v->render, (size_t)1 << 30);
	}
	return v;
}

void ft_tpl_vars_clear(struct ft_tpl_vars *vars)
{
	for (int i = 0; i < vars->n; i++)
		free(vars->b[i].name);
	vars->n = 0;
	ft_arena_reset(&vars->arena);
}

void ft_tpl_vars_free(struct ft_tpl_vars *vars)
{
	if (!vars)
		return;
	ft_tpl_vars_clear(vars);
	free(vars->b);
	ft_arena_release(&vars->arena);
	ft_arena_release(&vars->render);
	free(vars);
}

static int bind(struct ft_tpl_vars *vars, const char *name, struct jval v)
{
	for (int i = 0; i < vars->n; i++)
		if (!strcmp(vars->b[i].name, name)) {
			vars->b[i].val = v;
			return FT_OK;
		}
	if (vars->n == vars->cap) {
		int cap = vars->cap ? vars->cap * 2 : 16;
		struct binding *b = realloc(vars->b, (size_t)cap * sizeof *b);
		if (!b)
			return FT_E_NOMEM;
		vars->b = b;
		vars->cap = cap;
	}
	char *n = strdup(name);
	if (!n)
		return FT_E_NOMEM;
	vars->b[vars->n].name = n;
	vars->b[vars->n].val = v;
	vars->n++;
	return FT_OK;
}

int ft_tpl_vars_json(struct ft_tpl_vars *vars, const char *name, const cJSON *value)
{
	/* scalars are converted at lookup (strings need the render arena) */
	struct jval v = { .kind = V_JSON };
	v.j = value;
	return bind(vars, name, v);
}

int ft_tpl_vars_str(struct ft_tpl_vars *vars, const char *name, const char *s, int provenance)
{
	struct jstr *js = ft_arena_alloc(&vars->arena, sizeof *js);
	if (!js)
		return FT_E_NOMEM;
	js->p = s;
	js->len = strlen(s);
	if (provenance == FT_TPL_DATA && js->len) {
		js->spans = ft_arena_alloc(&vars->arena, sizeof *js->spans);
		if (!js->spans)
			return FT_E_NOMEM;
		js->spans[0] = (struct jspan){ 0, (uint32_t)js->len, s, FT_SPAN_DATA };
		js->nspans = 1;
	}
	return bind(vars, name, mkstr(js));
}

int ft_tpl_vars_bool(struct ft_tpl_vars *vars, const char *name, bool b)
{
	return bind(vars, name, mkbool(b));
}

int ft_tpl_vars_none(struct ft_tpl_vars *vars, const char *name)
{
	return bind(vars, name, none());
}

/* ---- render ---- */

int ft_tpl_render(const struct ft_tpl *t, struct ft_tpl_vars *vars, struct ft_render *out,
		  struct ft_err *err)
{
	struct rt *rt = calloc(1, sizeof *rt);
	if (!rt)
		return ft_err_set(err, FT_E_NOMEM, "out of memory");
	rt->t = t;
	rt->vars = vars;
	rt->out = out;
	rt->err = err;
	ft_arena_reset(&vars->render);
	rt->arena = &vars->render;
	int rc = FT_OK;
	if (setjmp(rt->fail)) {
		rc = err && err->code ? err->code : FT_E_RENDER;
	} else {
		struct scope *top = push_scope(rt, NULL);
		exec_body(rt, top, t->root);
	}
	free(rt);
	return rc;
}
