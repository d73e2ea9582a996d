/* jinja_eval.c: evaluation of compiled templates with Python semantics.
 *
 * Values follow Python's rules where chat templates can see them: str() and
 * repr() of lists and dicts, float repr, truthiness, comparisons, dict
 * attribute-then-item lookup, jinja2's Undefined (renders empty, fails on
 * use with jinja2's messages), generators (filters such as select and map
 * give one: always true, no len(), used up by iteration), scopes (loops,
 * macros, block sets, filter blocks, with and generation blocks keep their
 * sets inside). Integers are 64-bit: results beyond fail rather than differ.
 * tests/ref/jinja2.sh compares all this with Python's jinja2.
 *
 * Strings carry spans saying which bytes came from data (and from which
 * cJSON node) and which were rendered inside {% generation %}; every
 * operation keeps them (concatenation and slicing exactly, transformations
 * by tainting the whole result). Numbers, booleans and None from data
 * render as template text (they cannot hold special tokens).
 *
 * Errors longjmp to ft_tpl_render. Heap scratch buffers are registered with
 * the render (tmp_register) so such a jump frees them; recursion is bounded
 * (MAX_EVAL_DEPTH, MAX_CALL_DEPTH, and the parser's MAX_NEST), so hostile
 * templates and data fail cleanly instead of overflowing the stack. */
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
/* evaluation recursion (expressions, blocks, macro calls, comparisons of
 * nested values): the parser bounds a template's depth, this bounds the sum
 * over recursive macro calls */
#define MAX_EVAL_DEPTH 3000

/* keeps big frames out of the recursive evaluator */
#define NOINLINE __attribute__((noinline))

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

struct tmpbuf {
	void *p;       /* struct ft_buf or struct ft_render */
	bool is_buf;
};

struct rt {
	struct tmpbuf *tmp;   /* scratch buffers alive now (see tmp_register) */
	int ntmp, captmp;
	const struct ft_tpl *t;
	struct ft_tpl_vars *vars;
	struct ft_arena *arena;
	struct ft_render *out;
	unsigned train;
	struct ft_err *err;
	jmp_buf fail;
	int depth;       /* macro calls */
	int edepth;      /* evaluation recursion */
};

static _Noreturn void rt_fail(struct rt *rt, const struct node *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void enter(struct rt *rt, const struct node *at)
{
	if (++rt->edepth > MAX_EVAL_DEPTH)
		rt_fail(rt, at, "maximum recursion depth exceeded");
}

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

/* Python type names as jinja2's object_type_repr() gives them. */
enum utype { UT_NONE = 1, UT_BOOL, UT_INT, UT_FLOAT, UT_STR, UT_LIST, UT_TUPLE, UT_DICT,
	     UT_NS, UT_LOOP, UT_MACRO, UT_FUNC, UT_TYPE, UT_METHOD, UT_OBJECT };

static const char *const utype_names[] = {
	"", "None", "bool object", "int object", "float object", "str object", "list object",
	"tuple object", "dict object", "jinja2.utils.Namespace object",
	"jinja2.runtime.LoopContext object", "jinja2.runtime.Macro object", "function object",
	"type object", "builtin_function_or_method object", "object",
};

/* Using an Undefined: fail with jinja2's UndefinedError message. */
static _Noreturn void undef_fail(struct rt *rt, const struct node *at, struct jval u)
{
	const char *name = u.undef_name ? u.undef_name : "None";
	if (u.uobj == U_HINT)
		rt_fail(rt, at, "%s", name);
	if (u.uobj == U_NAME)
		rt_fail(rt, at, "'%s' is undefined", name);
	const char *type = utype_names[(u.uobj & ~U_ELEMENT) < UT_OBJECT ? u.uobj & ~U_ELEMENT : UT_OBJECT];
	if (u.uobj & U_ELEMENT)
		rt_fail(rt, at, "%s has no element %s", type, name);
	rt_fail(rt, at, "'%s' has no attribute '%s'", type, name);
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

/* Scratch buffers (builders below, ft_buf for encoders) own heap memory;
 * they live in the render arena and are registered with the render, so an
 * error anywhere (a longjmp) cannot leak them: the render frees whatever is
 * still registered when it ends. */
static void tmp_register(struct rt *rt, void *p, bool is_buf)
{
	if (rt->ntmp == rt->captmp) {
		/* the registry itself lives in the render arena */
		int cap = rt->captmp ? rt->captmp * 2 : 16;
		struct tmpbuf *t = ft_arena_alloc(rt->arena, (size_t)cap * sizeof *t);
		if (!t) {
			if (is_buf)
				ft_buf_release(p);
			else
				ft_render_release(p);
			if (rt->err)
				ft_err_set(rt->err, FT_E_NOMEM, "out of memory while rendering");
			longjmp(rt->fail, 2);
		}
		if (rt->ntmp)
			memcpy(t, rt->tmp, (size_t)rt->ntmp * sizeof *t);
		rt->tmp = t;
		rt->captmp = cap;
	}
	rt->tmp[rt->ntmp++] = (struct tmpbuf){ p, is_buf };
}

/* Release p and drop it from the registry (usually the last entry). */
static void tmp_release(struct rt *rt, void *p)
{
	for (int i = rt->ntmp - 1; i >= 0; i--)
		if (rt->tmp[i].p == p) {
			if (rt->tmp[i].is_buf)
				ft_buf_release(p);
			else
				ft_render_release(p);
			rt->tmp[i] = rt->tmp[--rt->ntmp];
			return;
		}
}

static struct ft_buf *tb_new(struct rt *rt, size_t max)
{
	struct ft_buf *b = ralloc(rt, sizeof *b);
	ft_buf_init(b, max);
	tmp_register(rt, b, true);
	return b;
}

/* A builder for strings assembled from pieces (join, concatenation),
 * keeping the provenance spans. */
struct sb {
	struct ft_render r;
};

static struct sb *sb_new(struct rt *rt)
{
	struct sb *b = ralloc(rt, sizeof *b);
	ft_render_init(&b->r);
	tmp_register(rt, &b->r, false);
	return b;
}

static struct jstr *sb_done(struct rt *rt, struct sb *b)
{
	struct jstr *s = render_to_jstr(rt, &b->r);
	tmp_release(rt, &b->r);
	return s;
}

/* ---- value basics ---- */

static struct jval undef(const char *name)
{
	struct jval v = { .kind = V_UNDEF };
	v.undef_name = name;
	return v;
}

/* An Undefined whose message is hint (jinja2's Undefined(hint=...)). */
static struct jval undef_hint(const char *hint)
{
	struct jval v = undef(hint);
	v.uobj = U_HINT;
	return v;
}

static uint8_t utype_of(struct jval v);

/* The Undefined that a missing attribute (or, with element, item) of obj
 * is; name must outlive the render. */
static struct jval undef_of(struct jval obj, const char *name, bool element)
{
	struct jval v = undef(name);
	v.uobj = (uint8_t)(utype_of(obj) | (element ? U_ELEMENT : 0));
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
		if (!ft_json_is_int(n))
			return mkfloat(n->valuedouble);
		if (n->valuestring) {
			/* digits kept by the JSON reader: beyond int64, keep them */
			errno = 0;
			(void)strtoll(n->valuestring, NULL, 10);
			if (errno == ERANGE) {
				struct jval v = { .kind = V_BIGINT };
				v.j = n;
				return v;
			}
		}
		return mkint(ft_json_int(n));
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

/* What jinja2 returns as a generator. */
static struct jval mkgen(struct vlist *l)
{
	l->view = VIEW_GEN;
	l->tuple = false;
	struct jval v = { .kind = V_LIST };
	v.l = l;
	return v;
}

static bool is_dict_view(struct jval v)
{
	return v.kind == V_LIST && v.l->view >= VIEW_ITEMS && v.l->view <= VIEW_VALUES;
}

static bool is_json_obj(struct jval v) { return v.kind == V_JSON && cJSON_IsObject(v.j); }
static bool is_json_arr(struct jval v) { return v.kind == V_JSON && cJSON_IsArray(v.j); }
static bool is_gen(struct jval v) { return v.kind == V_LIST && v.l->view == VIEW_GEN; }
/* lists and tuples (not generators: they cannot be indexed, sized, added) */
static bool is_seq(struct jval v) { return (v.kind == V_LIST && !is_gen(v)) || is_json_arr(v); }
static bool is_map(struct jval v) { return v.kind == V_DICT || is_json_obj(v); }
static bool is_num(struct jval v)
{
	return v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL || v.kind == V_BIGINT;
}

static double num(struct jval v)
{
	switch (v.kind) {
	case V_FLOAT: return v.f;
	case V_INT: return (double)v.i;
	case V_BOOL: return (double)v.b;
	case V_BIGINT: return v.j->valuedouble;
	default: return 0;
	}
}

/* A double truncated toward zero, saturating (Python's int() of a float
 * that does not fit 64 bits would be exact; NaN gives 0). */
static int64_t trunc_i64(double d)
{
	if (!(d == d))
		return 0;
	if (d >= 9223372036854775807.0)
		return INT64_MAX;
	if (d <= -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

static int64_t inum(struct jval v)
{
	switch (v.kind) {
	case V_INT: return v.i;
	case V_BOOL: return v.b;
	case V_FLOAT: return trunc_i64(v.f);
	case V_BIGINT: return ft_json_int(v.j);
	default: return 0;
	}
}

static const char *type_name(struct jval v)
{
	switch (v.kind) {
	case V_UNDEF: return "Undefined";
	case V_NONE: return "NoneType";
	case V_BOOL: return "bool";
	case V_INT: case V_BIGINT: return "int";
	case V_FLOAT: return "float";
	case V_STR: return "str";
	case V_LIST:
		return v.l->view == VIEW_GEN ? "generator" :
		       v.l->view == VIEW_ITEMS ? "dict_items" : v.l->view == VIEW_KEYS ? "dict_keys" :
		       v.l->view == VIEW_VALUES ? "dict_values" : v.l->tuple ? "tuple" : "list";
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

enum globals_id { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME };

static uint8_t utype_of(struct jval v)
{
	switch (v.kind) {
	case V_NONE: return UT_NONE;
	case V_BOOL: return UT_BOOL;
	case V_INT: case V_BIGINT: return UT_INT;
	case V_FLOAT: return UT_FLOAT;
	case V_STR: return UT_STR;
	case V_LIST: return v.l->tuple ? UT_TUPLE : UT_LIST;
	case V_DICT: return UT_DICT;
	case V_JSON: return cJSON_IsArray(v.j) ? UT_LIST : UT_DICT;
	case V_NS: return UT_NS;
	case V_LOOP: return UT_LOOP;
	case V_MACRO: return UT_MACRO;
	case V_FUNC: return v.func == G_DICT || v.func == G_NAMESPACE ? UT_TYPE : UT_FUNC;
	case V_METHOD: return UT_METHOD;
	default: return UT_OBJECT;
	}
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
		if (is_gen(v)) {
			/* iterating a generator uses it up */
			struct vlist *rest = newlist(rt, v.l->n - v.l->pos);
			memcpy(rest->items, v.l->items + v.l->pos, rest->n * sizeof *rest->items);
			v.l->pos = v.l->n;
			return rest;
		}
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
	case V_BIGINT: return true;
	case V_FLOAT: return v.f != 0;
	case V_STR: return v.s->len != 0;
	case V_LIST: return v.l->n != 0 || is_gen(v);  /* a generator is always true */
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
	case V_LIST:
		if (is_gen(v))
			rt_fail(rt, at, "object of type 'generator' has no len()");
		return (int64_t)v.l->n;
	case V_DICT: case V_NS: return (int64_t)v.d->n;
	case V_JSON: return (int64_t)json_count(v.j);
	default: rt_fail(rt, at, "object of type '%s' has no len()", type_name(v));
	}
}

/* ---- equality and ordering (Python) ---- */

static bool equals_(struct rt *rt, struct jval a, struct jval b);

static bool equals(struct rt *rt, struct jval a, struct jval b)
{
	enter(rt, NULL);
	bool r = equals_(rt, a, b);
	rt->edepth--;
	return r;
}

static bool equals_(struct rt *rt, struct jval a, struct jval b)
{
	if (is_num(a) && is_num(b)) {
		if (a.kind == V_BIGINT || b.kind == V_BIGINT) {
			if (a.kind == V_BIGINT && b.kind == V_BIGINT)
				return !strcmp(a.j->valuestring, b.j->valuestring);
			/* an int64 never equals a bigger integer */
			return a.kind == V_FLOAT || b.kind == V_FLOAT ? num(a) == num(b) : false;
		}
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
	if (is_gen(a) || is_gen(b))
		return a.kind == b.kind && a.l == b.l;
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

static int compare_(struct rt *rt, struct jval a, struct jval b, const struct node *at);

static int compare(struct rt *rt, struct jval a, struct jval b, const struct node *at)
{
	enter(rt, at);
	int r = compare_(rt, a, b, at);
	rt->edepth--;
	return r;
}

static int compare_(struct rt *rt, struct jval a, struct jval b, const struct node *at)
{
	if (a.kind == V_UNDEF || b.kind == V_UNDEF)
		undef_fail(rt, at, a.kind == V_UNDEF ? a : b);
	if (is_num(a) && is_num(b)) {
		if (a.kind != V_FLOAT && b.kind != V_FLOAT && a.kind != V_BIGINT && b.kind != V_BIGINT)
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

static NOINLINE struct jstr *to_str(struct rt *rt, struct jval v)
{
	switch (v.kind) {
	case V_STR: return v.s;
	case V_UNDEF: return lit(rt, "", 0);
	case V_NONE: return lit(rt, "None", 4);
	case V_BOOL: return v.b ? lit(rt, "True", 4) : lit(rt, "False", 5);
	case V_INT: return int_str(rt, v.i);
	case V_BIGINT: return lit(rt, v.j->valuestring, strlen(v.j->valuestring));
	case V_FLOAT: return float_str(rt, v.f);
	default: {
		struct sb *b = sb_new(rt);
		repr_into(rt, &b->r, v, 0);
		return sb_done(rt, b);
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
	struct ft_buf *b = tb_new(rt, MAX_STRING);
	int rc = ft_buf_putc(b, q);
	for (size_t i = 0; i < s->len && !rc;) {
		int32_t cp;
		int k = ft_utf8_decode(s->p + i, s->len - i, &cp);
		if (cp == q || cp == '\\')
			rc = ft_buf_printf(b, "\\%c", (char)cp);
		else if (cp == '\n')
			rc = ft_buf_puts(b, "\\n");
		else if (cp == '\r')
			rc = ft_buf_puts(b, "\\r");
		else if (cp == '\t')
			rc = ft_buf_puts(b, "\\t");
		else if (!py_printable(cp))
			rc = cp < 0x100 ? ft_buf_printf(b, "\\x%02x", cp) :
			     cp < 0x10000 ? ft_buf_printf(b, "\\u%04x", cp) :
					    ft_buf_printf(b, "\\U%08x", cp);
		else
			rc = ft_buf_append(b, s->p + i, (size_t)k);
		i += (size_t)k;
	}
	if (!rc)
		rc = ft_buf_putc(b, q);
	if (rc)
		rt_fail(rt, NULL, rc == FT_E_TOOBIG ? "string too long" : "out of memory");
	char *copy = ralloc(rt, b->len + 1);
	memcpy(copy, b->data, b->len);
	size_t n = b->len;
	tmp_release(rt, b);
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
		if (is_gen(v)) {
			/* Python shows an address here: this cannot match */
			put_lit(rt, r, "<generator object>", 18);
			return;
		}
		if (v.kind == V_LIST || cJSON_IsArray(v.j)) {
			bool tuple = v.kind == V_LIST && v.l->tuple;
			struct vlist *l = to_list(rt, v, NULL);
			if (is_dict_view(v)) {
				/* dict_items([...]) */
				const char *name = type_name(v);
				put_lit(rt, r, name, strlen(name));
				put_lit(rt, r, "(", 1);
			}
			put_lit(rt, r, tuple ? "(" : "[", 1);
			for (size_t i = 0; i < l->n; i++) {
				if (i)
					put_lit(rt, r, ", ", 2);
				repr_into(rt, r, l->items[i], depth + 1);
			}
			if (tuple && l->n == 1)
				put_lit(rt, r, ",", 1);
			put_lit(rt, r, tuple ? ")" : "]", 1);
			if (is_dict_view(v))
				put_lit(rt, r, ")", 1);
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

/* ---- arguments ---- */

static struct jval undef_hint(const char *hint);

/* An argument Python requires to be an int (bool counts). */
static int64_t need_int(struct rt *rt, struct jval v, const struct node *at)
{
	if (v.kind == V_UNDEF)
		undef_fail(rt, at, v);
	if (v.kind == V_BIGINT)
		rt_fail(rt, at, "Python int too large to convert to C ssize_t");
	if (v.kind != V_INT && v.kind != V_BOOL)
		rt_fail(rt, at, "'%s' object cannot be interpreted as an integer", type_name(v));
	return inum(v);
}

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

/* json.dumps options (transformers' tojson filter). */
struct dumpopts {
	const char *indent;      /* NULL: no indent (indent=None) */
	size_t indent_len;
	const char *item_sep, *key_sep;
	size_t item_sep_len, key_sep_len;
	bool ensure_ascii, sort_keys;
	int plain_indent;        /* >= -1: the defaults but an int indent (-1 None), which
				  * lib/json's ft_json_write_py_depth writes fast */
};

/* A JSON string literal as Python's json encoders write it. */
static int dump_string(struct ft_buf *b, const char *p, size_t n, bool ensure_ascii)
{
	if (!ensure_ascii)
		return ft_json_write_string(b, p, n);
	int rc = ft_buf_putc(b, '"');
	for (size_t i = 0; i < n && !rc;) {
		int32_t cp;
		int k = ft_utf8_decode(p + i, n - i, &cp);
		i += (size_t)k;
		switch (cp) {
		case '"': rc = ft_buf_puts(b, "\\\""); break;
		case '\\': rc = ft_buf_puts(b, "\\\\"); break;
		case '\n': rc = ft_buf_puts(b, "\\n"); break;
		case '\r': rc = ft_buf_puts(b, "\\r"); break;
		case '\t': rc = ft_buf_puts(b, "\\t"); break;
		case '\b': rc = ft_buf_puts(b, "\\b"); break;
		case '\f': rc = ft_buf_puts(b, "\\f"); break;
		default:
			if (cp >= ' ' && cp <= '~')
				rc = ft_buf_putc(b, (char)cp);
			else if (cp < 0x10000)
				rc = ft_buf_printf(b, "\\u%04x", (unsigned)cp);
			else
				rc = ft_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + ((unsigned)(cp - 0x10000) >> 10),
						   0xDC00 + ((unsigned)(cp - 0x10000) & 0x3FF));
		}
	}
	return rc ? rc : ft_buf_putc(b, '"');
}

static int dump_newline(struct ft_buf *b, const struct dumpopts *o, int depth)
{
	int rc = ft_buf_putc(b, '\n');
	for (int k = 0; k < depth && !rc; k++)
		rc = ft_buf_append(b, o->indent, o->indent_len);
	return rc;
}

static int cmp_json_keys(const void *x, const void *y)
{
	const cJSON *a = *(const cJSON *const *)x, *b = *(const cJSON *const *)y;
	return strcmp(a->string ? a->string : "", b->string ? b->string : "");
}

/* json.dumps of a JSON tree from the data: numbers as the data wrote them
 * (integers exactly, floats as Python's repr). */
static void dumps_json(struct rt *rt, struct ft_buf *b, const cJSON *v, const struct dumpopts *o,
		       int depth, const struct node *at)
{
	int rc = 0;
	char tmp[32];
	if (depth > 500)
		rt_fail(rt, at, "maximum recursion depth exceeded in tojson");
	switch (v->type & 0xFF) {
	case cJSON_NULL: rc = ft_buf_puts(b, "null"); break;
	case cJSON_True: rc = ft_buf_puts(b, "true"); break;
	case cJSON_False: rc = ft_buf_puts(b, "false"); break;
	case cJSON_Number:
		if (ft_json_is_int(v) && v->valuestring)
			rc = ft_buf_puts(b, v->valuestring);
		else if (ft_json_is_int(v))
			rc = ft_buf_printf(b, "%" PRId64, ft_json_int(v));
		else
			rc = ft_buf_append(b, tmp, (size_t)ft_fmt_jsonfloat(v->valuedouble, tmp));
		break;
	case cJSON_String:
		rc = dump_string(b, v->valuestring, strlen(v->valuestring), o->ensure_ascii);
		break;
	case cJSON_Array:
	case cJSON_Object: {
		bool obj = cJSON_IsObject(v);
		size_t n = json_count(v);
		rc = ft_buf_putc(b, obj ? '{' : '[');
		if (!n) {
			rc = rc ? rc : ft_buf_putc(b, obj ? '}' : ']');
			break;
		}
		const cJSON **kids = NULL;
		if (obj && o->sort_keys) {
			kids = ralloc(rt, n * sizeof *kids);
			size_t i = 0;
			for (const cJSON *c = v->child; c; c = c->next)
				kids[i++] = c;
			qsort(kids, n, sizeof *kids, cmp_json_keys);
		}
		const cJSON *c = v->child;
		for (size_t i = 0; i < n && !rc; i++, c = c->next) {
			const cJSON *kid = kids ? kids[i] : c;
			if (i)
				rc = ft_buf_append(b, o->item_sep, o->item_sep_len);
			if (!rc && o->indent)
				rc = dump_newline(b, o, depth + 1);
			if (!rc && obj) {
				const char *k = kid->string ? kid->string : "";
				rc = dump_string(b, k, strlen(k), o->ensure_ascii);
				rc = rc ? rc : ft_buf_append(b, o->key_sep, o->key_sep_len);
			}
			if (!rc)
				dumps_json(rt, b, kid, o, depth + 1, at);
		}
		if (!rc && o->indent)
			rc = dump_newline(b, o, depth);
		rc = rc ? rc : ft_buf_putc(b, obj ? '}' : ']');
		break;
	}
	default:
		rc = ft_buf_puts(b, "null");
	}
	if (rc)
		rt_fail(rt, at, "tojson output too large");
}

static int cmp_dict_keys(const void *x, const void *y)
{
	const struct vkv *a = x, *b = y;
	int c = memcmp(a->key.s->p, b->key.s->p, a->key.s->len < b->key.s->len ? a->key.s->len : b->key.s->len);
	return c ? c : (a->key.s->len > b->key.s->len) - (a->key.s->len < b->key.s->len);
}

/* Python's json.dumps(v, ensure_ascii, indent, separators, sort_keys). */
static void dumps(struct rt *rt, struct ft_buf *b, struct jval v, const struct dumpopts *o,
		  int depth, const struct node *at)
{
	int rc = 0;
	char tmp[32];
	if (depth > 500)
		rt_fail(rt, at, "maximum recursion depth exceeded in tojson");
	switch (v.kind) {
	case V_NONE: rc = ft_buf_puts(b, "null"); break;
	case V_BOOL: rc = ft_buf_puts(b, v.b ? "true" : "false"); break;
	case V_INT: rc = ft_buf_printf(b, "%" PRId64, v.i); break;
	case V_BIGINT: rc = ft_buf_puts(b, v.j->valuestring); break;
	case V_FLOAT: rc = ft_buf_append(b, tmp, (size_t)ft_fmt_jsonfloat(v.f, tmp)); break;
	case V_STR: rc = dump_string(b, v.s->p, v.s->len, o->ensure_ascii); break;
	case V_JSON:
		if (o->plain_indent >= -1)
			rc = ft_json_write_py_depth(b, v.j, o->plain_indent, depth);
		else
			dumps_json(rt, b, v.j, o, depth, at);
		break;
	case V_LIST:
	case V_DICT: {
		bool dict = v.kind == V_DICT;
		if (is_dict_view(v) || is_gen(v))
			rt_fail(rt, at, "Object of type %s is not JSON serializable", type_name(v));
		size_t n = dict ? v.d->n : v.l->n;
		rc = ft_buf_putc(b, dict ? '{' : '[');
		if (!n) {
			rc = rc ? rc : ft_buf_putc(b, dict ? '}' : ']');
			break;
		}
		struct vkv *items = dict ? v.d->items : NULL;
		if (dict) {
			/* keys become strings first, as json.dumps does */
			items = ralloc(rt, n * sizeof *items);
			for (size_t i = 0; i < n; i++) {
				struct jval k = v.d->items[i].key;
				items[i] = v.d->items[i];
				if (k.kind == V_STR)
					continue;
				if (k.kind != V_INT && k.kind != V_BIGINT && k.kind != V_FLOAT &&
				    k.kind != V_BOOL && k.kind != V_NONE)
					rt_fail(rt, at, "keys must be str, int, float, bool or None, not %s",
						type_name(k));
				struct ft_buf *kb = tb_new(rt, 0);
				dumps(rt, kb, k, o, 0, at);
				items[i].key = mkstr(lit_copy(rt, kb->data ? kb->data : "", kb->len));
				tmp_release(rt, kb);
			}
			if (o->sort_keys) {
				for (size_t i = 0; i < n; i++)
					if (v.d->items[i].key.kind != V_STR && v.d->items[0].key.kind == V_STR)
						rt_fail(rt, at, "'<' not supported between instances of '%s' and 'str'",
							type_name(v.d->items[i].key));
				qsort(items, n, sizeof *items, cmp_dict_keys);
			}
		}
		for (size_t i = 0; i < n && !rc; i++) {
			if (i)
				rc = ft_buf_append(b, o->item_sep, o->item_sep_len);
			if (!rc && o->indent)
				rc = dump_newline(b, o, depth + 1);
			if (rc)
				break;
			if (dict) {
				rc = dump_string(b, items[i].key.s->p, items[i].key.s->len, o->ensure_ascii);
				rc = rc ? rc : ft_buf_append(b, o->key_sep, o->key_sep_len);
				if (!rc)
					dumps(rt, b, items[i].val, o, depth + 1, at);
			} else {
				dumps(rt, b, v.l->items[i], o, depth + 1, at);
			}
		}
		if (!rc && o->indent)
			rc = dump_newline(b, o, depth);
		rc = rc ? rc : ft_buf_putc(b, dict ? '}' : ']');
		break;
	}
	default:
		rt_fail(rt, at, "Object of type %s is not JSON serializable",
			v.kind == V_NS ? "Namespace" : v.kind == V_LOOP ? "LoopContext" : type_name(v));
	}
	if (rc)
		rt_fail(rt, at, "tojson output too large");
}

/* The tojson filter: transformers' tojson(x, ensure_ascii=False,
 * indent=None, separators=None, sort_keys=False). */
static struct jstr *tojson(struct rt *rt, struct jval v, struct args *a, const struct node *at)
{
	struct dumpopts o = { .item_sep = ", ", .key_sep = ": ", .item_sep_len = 2, .key_sep_len = 2,
			      .plain_indent = -1 };
	struct jval nil = none();
	o.ensure_ascii = truthy(arg(a, 0, "ensure_ascii", mkbool(false)));
	struct jval ind = arg(a, 1, "indent", nil);
	if (ind.kind == V_STR) {
		o.indent = ind.s->p;
		o.indent_len = ind.s->len;
		o.plain_indent = -2;
	} else if (ind.kind == V_INT || ind.kind == V_BOOL) {
		int64_t k = inum(ind);
		if (k > 1000)
			rt_fail(rt, at, "tojson: indent too large");
		char *sp = ralloc(rt, k > 0 ? (size_t)k + 1 : 1);
		memset(sp, ' ', k > 0 ? (size_t)k : 0);
		o.indent = sp;
		o.indent_len = k > 0 ? (size_t)k : 0;
		o.plain_indent = (int)o.indent_len;
	} else if (ind.kind != V_NONE) {
		rt_fail(rt, at, "tojson: indent must be an integer or a string, not %s", type_name(ind));
	}
	if (o.indent)
		o.item_sep_len = 1;  /* "," */
	struct jval seps = arg(a, 2, "separators", nil);
	if (seps.kind != V_NONE) {
		struct vlist *l = is_seq(seps) ? to_list(rt, seps, at) : NULL;
		if (!l || l->n != 2 || l->items[0].kind != V_STR || l->items[1].kind != V_STR)
			rt_fail(rt, at, "tojson: separators must be a pair of strings");
		o.item_sep = l->items[0].s->p;
		o.item_sep_len = l->items[0].s->len;
		o.key_sep = l->items[1].s->p;
		o.key_sep_len = l->items[1].s->len;
		o.plain_indent = -2;
	}
	o.sort_keys = truthy(arg(a, 3, "sort_keys", mkbool(false)));
	if (o.sort_keys || o.ensure_ascii)
		o.plain_indent = -2;
	struct ft_buf *b = tb_new(rt, MAX_STRING);
	dumps(rt, b, v, &o, 0, at);
	char *p = ralloc(rt, b->len + 1);
	memcpy(p, b->data ? b->data : "", b->len);
	size_t n = b->len;
	tmp_release(rt, b);
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


static NOINLINE bool lookup(struct rt *rt, struct scope *s, const char *name, size_t n, struct jval *out)
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
	M_REMOVEPREFIX, M_REMOVESUFFIX, M_PARTITION, M_RPARTITION, M_SINDEX, M_RINDEX, M_LJUST,
	M_RJUST, M_CENTER, M_ZFILL,
	M_STR_END,
	M_ITEMS = M_STR_END, M_KEYS, M_VALUES, M_GET, M_DICT_END,
	M_INDEX = M_DICT_END, M_LCOUNT, M_LIST_END,
	M_CYCLE = M_LIST_END, M_CHANGED,
};

static const char *const method_names[] = {
	"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
	"lower", "title", "capitalize", "replace", "find", "rfind", "count", "join",
	"splitlines", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
	"removeprefix", "removesuffix", "partition", "rpartition", "index", "rindex", "ljust",
	"rjust", "center", "zfill",
	"items", "keys", "values", "get",
	"index", "count",
	"cycle",
};

static int method_lookup(int from, int to, const char *name, size_t n)
{
	for (int i = from; i < to; i++)
		if (method_names[i][0] == name[0] && strlen(method_names[i]) == n &&
		    !memcmp(method_names[i], name, n))
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
	if (IS("previtem")) return L->has_prev ? L->prev : undef_hint("there is no previous item");
	if (IS("nextitem")) return L->has_next ? L->next : undef_hint("there is no next item");
	if (IS("cycle")) return mkmethod(rt, v, M_CYCLE);
	if (IS("changed")) return mkmethod(rt, v, M_CHANGED);
#undef IS
	*found = false;
	return undef(NULL);
}

/* dict methods jinja2 finds as attributes before it looks at items; the
 * immutable sandbox makes the mutating ones unusable */
static const char *const dict_attrs[] = { "pop", "popitem", "setdefault", "update", "clear",
					  "copy", "fromkeys" };

/* getattr(obj, name) in jinja2's sandbox; with items, then obj[name]. */
static NOINLINE struct jval getattr_x(struct rt *rt, struct jval obj, const char *name, size_t n,
			     const struct node *at, bool items)
{
	int id;
	bool found;
	switch (obj.kind) {
	case V_UNDEF:
		undef_fail(rt, at, obj);
	case V_STR:
		if ((id = method_lookup(0, M_STR_END, name, n)) >= 0)
			return mkmethod(rt, obj, id);
		break;
	case V_DICT:
	case V_JSON:
		if (is_map(obj)) {
			if ((id = method_lookup(M_ITEMS, M_DICT_END, name, n)) >= 0)
				return mkmethod(rt, obj, id);
			for (size_t k = 0; k < sizeof dict_attrs / sizeof *dict_attrs; k++)
				if (dict_attrs[k][0] == name[0] && strlen(dict_attrs[k]) == n &&
				    !memcmp(dict_attrs[k], name, n)) {
					char *h = ralloc(rt, n + 64);
					snprintf(h, n + 64, "access to attribute '%s' of 'dict' object is unsafe.",
						 dict_attrs[k]);
					return undef_hint(h);
				}
			if (!items)
				break;
			struct jval key = mkstr(lit(rt, name, n));
			struct jval v = getitem_value(rt, obj, key, &found);
			if (found)
				return v;
		} else if ((id = method_lookup(M_INDEX, M_LIST_END, name, n)) >= 0) {
			return mkmethod(rt, obj, id);
		}
		break;
	case V_LIST:
		if (!is_gen(obj) && (id = method_lookup(M_INDEX, M_LIST_END, name, n)) >= 0)
			return mkmethod(rt, obj, id);
		if (obj.l->view == VIEW_GROUP && n == 7 && !memcmp(name, "grouper", 7))
			return obj.l->items[0];
		if (obj.l->view == VIEW_GROUP && n == 4 && !memcmp(name, "list", 4))
			return obj.l->items[1];
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
	return undef_of(obj, nm, false);
}

/* obj.name: Python attribute first (methods), then item, as jinja2 does. */
static struct jval getattr_(struct rt *rt, struct jval obj, const char *name, size_t n,
			    const struct node *at)
{
	return getattr_x(rt, obj, name, n, at, true);
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
	if (obj.kind == V_LIST && obj.l->view != VIEW_GEN && (key.kind == V_INT || key.kind == V_BOOL)) {
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
static NOINLINE struct jval getitem_(struct rt *rt, struct jval obj, struct jval key, const struct node *at)
{
	if (obj.kind == V_UNDEF)
		undef_fail(rt, at, obj);
	bool found = false;
	if (!is_dict_view(obj)) {  /* views are not subscriptable: Undefined, as jinja2 */
		struct jval v = getitem_value(rt, obj, key, &found);
		if (found)
			return v;
	}
	if (key.kind == V_STR)
		return getattr_(rt, obj, key.s->p, key.s->len, at);
	struct jstr *ks = to_str(rt, key);
	char *nm = ralloc(rt, ks->len + 1);
	memcpy(nm, ks->p, ks->len);
	return undef_of(obj, nm, true);
}

/* A slice bound: None (missing) or an integer, as Python requires. */
static bool slice_index(struct rt *rt, struct jval v, int64_t *out, const struct node *at)
{
	if (v.kind == V_NONE)
		return false;
	if (v.kind != V_INT && v.kind != V_BOOL)
		rt_fail(rt, at, "slice indices must be integers or None or have an __index__ method");
	*out = inum(v);
	return true;
}

/* obj[start:stop:step] with Python's PySlice_AdjustIndices. */
static NOINLINE struct jval slice_(struct rt *rt, struct jval obj, struct jval start, struct jval stop,
			  struct jval step, const struct node *at)
{
	int64_t len;
	struct vlist *items = NULL;
	/* jinja2 compiles a slice to a plain Python subscript: no Undefined
	 * here, TypeErrors instead */
	if (obj.kind == V_UNDEF)
		undef_fail(rt, at, obj);
	if (is_map(obj))
		rt_fail(rt, at, "unhashable type: 'slice'");
	if (obj.kind != V_STR && (!is_seq(obj) || is_dict_view(obj)))
		rt_fail(rt, at, "'%s' object is not subscriptable", type_name(obj));
	int64_t st = 1, a = 0, b = 0;
	slice_index(rt, step, &st, at);
	bool has_a = slice_index(rt, start, &a, at), has_b = slice_index(rt, stop, &b, at);
	if (st == 0)
		rt_fail(rt, at, "slice step cannot be zero");
	if (obj.kind == V_STR)
		len = (int64_t)ft_utf8_count(obj.s->p, obj.s->len);
	else
		len = (int64_t)(items = to_list(rt, obj, at))->n;
	if (st < -INT64_MAX)
		st = -INT64_MAX;
	if (!has_a) {
		a = st < 0 ? len - 1 : 0;
	} else if (a < 0) {
		a = a < -len ? (st < 0 ? -1 : 0) : a + len;
	} else if (a >= len) {
		a = st < 0 ? len - 1 : len;
	}
	if (!has_b) {
		b = st < 0 ? -1 : len;
	} else if (b < 0) {
		b = b < -len ? (st < 0 ? -1 : 0) : b + len;
	} else if (b >= len) {
		b = st < 0 ? len - 1 : len;
	}
	uint64_t cnt = 0;
	if (st > 0 && b > a)
		cnt = (uint64_t)(b - a - 1) / (uint64_t)st + 1;
	else if (st < 0 && a > b)
		cnt = (uint64_t)(a - b - 1) / ((uint64_t)0 - (uint64_t)st) + 1;
	if (obj.kind == V_STR && st == 1) {
		size_t x = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)a);
		size_t y = ft_utf8_offset(obj.s->p, obj.s->len, (size_t)(a + (int64_t)cnt));
		return mkstr(substr(rt, obj.s, x, y - x));
	}
	if (obj.kind == V_STR)
		items = to_list(rt, obj, at);
	struct vlist *out = newlist(rt, (size_t)cnt);
	for (uint64_t k = 0; k < cnt; k++)
		out->items[k] = items->items[a + (int64_t)k * st];
	if (obj.kind != V_STR) {
		out->tuple = obj.kind == V_LIST && obj.l->tuple;
		return mklist(out);
	}
	struct sb *sbb = sb_new(rt);
	for (size_t i = 0; i < cnt; i++)
		put(rt, &sbb->r, out->items[i].s, 0);
	return mkstr(sb_done(rt, sbb));
}

/* ---- evaluation ---- */

static struct jval eval(struct rt *rt, struct scope *sc, const struct node *e);
static int exec_body(struct rt *rt, struct scope *sc, const struct node *body);
static struct jval apply_filter(struct rt *rt, int id, struct jval v, struct args *a,
				const struct node *at, struct scope *sc);
static bool apply_test(struct rt *rt, int id, struct jval v, struct args *a, const struct node *at);

static NOINLINE void eval_args(struct rt *rt, struct scope *sc, const struct node *call, struct args *a,
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
	struct sb *sbb = sb_new(rt);
	put(rt, &sbb->r, a, 0);
	put(rt, &sbb->r, b, 0);
	return mkstr(sb_done(rt, sbb));
}

static struct jval repeat(struct rt *rt, struct jval seq, int64_t times, const struct node *at)
{
	if (times < 0)
		times = 0;
	if (seq.kind == V_STR) {
		if (seq.s->len && (size_t)times > MAX_STRING / seq.s->len)
			rt_fail(rt, at, "string too long");
		struct sb *sbb = sb_new(rt);
		for (int64_t i = 0; i < times; i++)
			put(rt, &sbb->r, seq.s, 0);
		return mkstr(sb_done(rt, sbb));
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

/* Python's float arithmetic (floatobject.c: float_div, float_rem,
 * float_floor_div, float_pow), errors included. */
static NOINLINE struct jval float_arith(struct rt *rt, int op, double x, double y, const struct node *at)
{
	switch (op) {
	case OP_ADD: return mkfloat(x + y);
	case OP_SUB: return mkfloat(x - y);
	case OP_MUL: return mkfloat(x * y);
	case OP_DIV:
		if (y == 0)
			rt_fail(rt, at, "float division by zero");
		return mkfloat(x / y);
	case OP_MOD:
	case OP_FLOORDIV: {
		if (y == 0)
			rt_fail(rt, at, op == OP_MOD ? "float modulo" : "float floor division by zero");
		double mod = fmod(x, y), div = (x - mod) / y, floordiv;
		if (mod != 0) {
			if ((y < 0) != (mod < 0)) {
				mod += y;
				div -= 1.0;
			}
		} else {
			mod = copysign(0.0, y);
		}
		if (div != 0) {
			floordiv = floor(div);
			if (div - floordiv > 0.5)
				floordiv += 1.0;
		} else {
			floordiv = copysign(0.0, x / y);
		}
		return mkfloat(op == OP_MOD ? mod : floordiv);
	}
	case OP_POW: {
		if (x == 0 && y < 0)
			rt_fail(rt, at, "0.0 cannot be raised to a negative power");
		if (x < 0 && y != floor(y) && isfinite(y))
			rt_fail(rt, at, "a negative number to a fractional power is complex: not supported");
		double r = pow(x, y);
		if (isinf(r) && isfinite(x) && isfinite(y))
			rt_fail(rt, at, "(34, 'Numerical result out of range')");
		return mkfloat(r);
	}
	}
	rt_fail(rt, at, "unsupported operator");
}

static NOINLINE struct jval arith(struct rt *rt, int op, struct jval a, struct jval b, const struct node *at)
{
	if (op == OP_CONCAT)
		return concat_str(rt, to_str(rt, a), to_str(rt, b));
	if (a.kind == V_UNDEF || b.kind == V_UNDEF)
		undef_fail(rt, at, a.kind == V_UNDEF ? a : b);
	if (is_num(a) && is_num(b)) {
		if (a.kind == V_BIGINT || b.kind == V_BIGINT)
			rt_fail(rt, at, "arithmetic on integers beyond 64 bits is not supported");
		if (a.kind == V_FLOAT || b.kind == V_FLOAT)
			return float_arith(rt, op, num(a), num(b), at);
		int64_t x = inum(a), y = inum(b), r;
		switch (op) {
		case OP_ADD:
			if (__builtin_add_overflow(x, y, &r))
				goto overflow;
			return mkint(r);
		case OP_SUB:
			if (__builtin_sub_overflow(x, y, &r))
				goto overflow;
			return mkint(r);
		case OP_MUL:
			if (__builtin_mul_overflow(x, y, &r))
				goto overflow;
			return mkint(r);
		case OP_DIV:
			if (y == 0)
				rt_fail(rt, at, "division by zero");
			return mkfloat((double)x / (double)y);
		case OP_FLOORDIV:
		case OP_MOD: {
			if (y == 0)
				rt_fail(rt, at, "integer division or modulo by zero");
			if (y == -1) {  /* x / -1 traps for INT64_MIN */
				if (op == OP_MOD)
					return mkint(0);
				if (x == INT64_MIN)
					goto overflow;
				return mkint(-x);
			}
			int64_t q = x / y, m = x % y;
			if (m && ((m < 0) != (y < 0))) {
				q--;
				m += y;
			}
			return mkint(op == OP_MOD ? m : q);
		}
		case OP_POW: {
			if (y < 0) {
				if (x == 0)
					rt_fail(rt, at, "0.0 cannot be raised to a negative power");
				return mkfloat(pow((double)x, (double)y));
			}
			int64_t acc = 1, base = x;
			for (int64_t e = y; e; e >>= 1) {  /* by squaring */
				if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
					goto overflow;
				if (e > 1 && __builtin_mul_overflow(base, base, &base))
					goto overflow;
			}
			return mkint(acc);
		}
		}
	}
	if (op == OP_ADD && a.kind == V_STR && b.kind == V_STR)
		return concat_str(rt, a.s, b.s);
	if (op == OP_ADD && is_seq(a) && is_seq(b) && !is_dict_view(a) && !is_dict_view(b)) {
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
	if (0) {
overflow:
		rt_fail(rt, at, "integer result beyond 64 bits (Python's ints are unbounded): not supported");
	}
	if (op == OP_ADD && a.kind == V_STR)
		rt_fail(rt, at, "can only concatenate str (not \"%s\") to str", type_name(b));
	rt_fail(rt, at, "unsupported operand type(s) for %s: '%s' and '%s'", opname[op],
		type_name(a), type_name(b));
}

/* dict keys and set members must be hashable, as in Python */
static void check_hashable(struct rt *rt, struct jval k, const struct node *at)
{
	if (k.kind == V_LIST && k.l->tuple && k.l->view == VIEW_NONE) {
		for (size_t i = 0; i < k.l->n; i++)
			check_hashable(rt, k.l->items[i], at);
		return;
	}
	if (k.kind == V_LIST || k.kind == V_DICT || k.kind == V_JSON)
		rt_fail(rt, at, "unhashable type: '%s'", type_name(k));
}

static NOINLINE bool contains(struct rt *rt, struct jval hay, struct jval needle, const struct node *at)
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
		check_hashable(rt, needle, at);
		if (hay.kind == V_NS)
			return dict_find(rt, hay.d, needle) != NULL;
		getitem_value(rt, hay, needle, &found);
		return found;
	}
	if (is_gen(hay)) {
		/* consumed up to the match */
		struct vlist *l = hay.l;
		while (l->pos < l->n)
			if (equals(rt, l->items[l->pos++], needle))
				return true;
		return false;
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

/* jinja2: Undefined(hint="parameter 'x' was not provided", name="x") */
static NOINLINE struct jval undef_param(struct rt *rt, const char *name)
{
	size_t n = strlen(name) + 32;
	char *h = ralloc(rt, n);
	snprintf(h, n, "parameter '%s' was not provided", name);
	return undef_hint(h);
}

static NOINLINE struct jval call_macro(struct rt *rt, struct vmacro *m, struct args *a, const struct node *at)
{
	const struct node *def = m->def;
	if (rt->depth >= MAX_CALL_DEPTH)
		rt_fail(rt, at, "maximum recursion depth exceeded");
	if (a->npos > def->nnames && !(def->op & MACRO_VARARGS))
		rt_fail(rt, at, "macro '%s' takes not more than %d argument(s)", def->name, def->nnames);
	struct scope *sc = push_scope(rt, m->closure);
	if (def->op & MACRO_VARARGS) {
		/* the positional arguments past the parameters */
		size_t extra = a->npos > def->nnames ? (size_t)(a->npos - def->nnames) : 0;
		struct vlist *t = newlist(rt, extra);
		t->tuple = true;
		memcpy(t->items, a->pos + (a->npos - (int)extra), extra * sizeof *t->items);
		scope_set(rt, sc, "varargs", mklist(t));
	}
	struct vdict *kw = def->op & MACRO_KWARGS ? newdict(rt, 4) : NULL;
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
				v = undef_param(rt, def->names[i]);
		}
		scope_set(rt, sc, def->names[i], v);
	}
	for (int k = 0; k < a->nkw; k++) {
		int i;
		for (i = 0; i < def->nnames; i++)
			if (!strcmp(a->kwn[k], def->names[i]))
				break;
		if (i < a->npos)  /* a parameter already given by position: an extra */
			i = def->nnames;
		if (i == def->nnames && !kw)
			rt_fail(rt, at, "macro '%s' takes no keyword argument '%s'", def->name, a->kwn[k]);
		if (i == def->nnames)
			dict_set(rt, kw, mkstr(lit(rt, a->kwn[k], strlen(a->kwn[k]))), a->kwv[k]);
	}
	if (kw) {
		struct jval kv = { .kind = V_DICT };
		kv.d = kw;
		scope_set(rt, sc, "kwargs", kv);
	}
	/* the output goes to a builder (freed by the render if the body fails) */
	struct sb *cap = sb_new(rt);
	struct ft_render *saved = rt->out;
	unsigned saved_train = rt->train;
	rt->out = &cap->r;
	rt->train = 0;
	rt->depth++;
	exec_body(rt, sc, def->a);
	rt->depth--;
	rt->out = saved;
	rt->train = saved_train;
	return mkstr(sb_done(rt, cap));
}

static struct jval call_method(struct rt *rt, struct vmethod *m, struct args *a, const struct node *at);
static struct jval call_global(struct rt *rt, int id, struct args *a, const struct node *at);

static NOINLINE struct jval call(struct rt *rt, struct jval fn, struct args *a, const struct node *at)
{
	switch (fn.kind) {
	case V_MACRO: return call_macro(rt, (struct vmacro *)fn.macro, a, at);
	case V_METHOD: return call_method(rt, fn.m, a, at);
	case V_FUNC: return call_global(rt, fn.func, a, at);
	case V_UNDEF:
		undef_fail(rt, at, fn);
	default:
		rt_fail(rt, at, "'%s' object is not callable", type_name(fn));
	}
}

static NOINLINE struct jval eval_filter_chain(struct rt *rt, struct scope *sc, const struct node *f,
				     struct jval base)
{
	enter(rt, f);
	struct jval v = f->a ? (f->a->kind == E_FILTER ? eval_filter_chain(rt, sc, f->a, base)
						     : eval(rt, sc, f->a))
			     : base;
	rt->edepth--;
	if (f->id < 0)
		rt_fail(rt, f, "no filter named '%s' found", f->name);
	struct args a;
	eval_args(rt, sc, f, &a, 0);
	return apply_filter(rt, f->id, v, &a, f, sc);
}

static struct jval eval_node(struct rt *rt, struct scope *sc, const struct node *e);

/* a ~ b ~ ...: str() of each operand, joined */
static NOINLINE struct jval eval_concat(struct rt *rt, struct scope *sc, const struct node *e)
{
	struct jstr **parts = ralloc(rt, (size_t)e->n * sizeof *parts);
	size_t total = 0;
	for (int i = 0; i < e->n; i++) {
		parts[i] = to_str(rt, eval(rt, sc, e->list[i]));
		total += parts[i]->len;
		if (total > MAX_STRING)
			rt_fail(rt, e, "string too long");
	}
	struct sb *b = sb_new(rt);
	for (int i = 0; i < e->n; i++)
		put(rt, &b->r, parts[i], 0);
	return mkstr(sb_done(rt, b));
}

static struct jval eval(struct rt *rt, struct scope *sc, const struct node *e)
{
	enter(rt, e);
	struct jval v = eval_node(rt, sc, e);
	rt->edepth--;
	return v;
}

/* The cases of eval_node with big frames, kept out of the recursion. */
static NOINLINE struct jval eval_call(struct rt *rt, struct scope *sc, const struct node *e)
{
	struct jval fn = eval(rt, sc, e->a);
	struct args a;
	eval_args(rt, sc, e, &a, 0);
	return call(rt, fn, &a, e);
}

static NOINLINE struct jval eval_test(struct rt *rt, struct scope *sc, const struct node *e)
{
	if (e->id < 0)
		rt_fail(rt, e, "no test named '%s' found", e->name);
	struct jval v = eval(rt, sc, e->a);
	struct args a;
	eval_args(rt, sc, e, &a, 0);
	bool r = apply_test(rt, e->id, v, &a, e);
	return mkbool(e->flag ? !r : r);
}

static NOINLINE struct jval eval_sign(struct rt *rt, const struct node *e, struct jval v)
{
	if (v.kind == V_UNDEF)
		undef_fail(rt, e, v);
	if (e->kind == E_POS) {
		if (!is_num(v))
			rt_fail(rt, e, "bad operand type for unary +: '%s'", type_name(v));
		return v.kind == V_BOOL ? mkint(v.b) : v;
	}
	if ((v.kind == V_INT && v.i == INT64_MIN) || v.kind == V_BIGINT)
		rt_fail(rt, e, "integer result beyond 64 bits (Python's ints are unbounded): not supported");
	if (v.kind == V_INT || v.kind == V_BOOL)
		return mkint(-inum(v));
	if (v.kind == V_FLOAT)
		return mkfloat(-v.f);
	rt_fail(rt, e, "bad operand type for unary -: '%s'", type_name(v));
}

/* a < b < c: each link, stopping at the first false one */
static NOINLINE struct jval eval_compare(struct rt *rt, struct scope *sc, const struct node *e)
{
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

static struct jval eval_node(struct rt *rt, struct scope *sc, const struct node *e)
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
	case E_CALL:
		return eval_call(rt, sc, e);
	case E_FILTER:
		return eval_filter_chain(rt, sc, e, undef(NULL));
	case E_TEST:
		return eval_test(rt, sc, e);
	case E_BINOP:
		return arith(rt, e->op, eval(rt, sc, e->a), eval(rt, sc, e->b), e);
	case E_CONCAT:
		return eval_concat(rt, sc, e);
	case E_NEG:
	case E_POS:
		return eval_sign(rt, e, eval(rt, sc, e->a));
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
	case E_COMPARE:
		return eval_compare(rt, sc, e);
	case E_COND:
		if (truthy(eval(rt, sc, e->a)))
			return eval(rt, sc, e->b);
		return e->c ? eval(rt, sc, e->c) : undef_hint(e->name);
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
		for (int i = 0; i + 1 < e->n; i += 2) {
			struct jval k = eval(rt, sc, e->list[i]);
			check_hashable(rt, k, e);
			dict_set(rt, d, k, eval(rt, sc, e->list[i + 1]));
		}
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
	struct loopinfo *L = ralloc(rt, sizeof *L);
	L->length = (int64_t)items->n;
	L->depth = 1;  /* jinja2 counts recursive loop calls only */
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
	struct sb *cap = sb_new(rt);
	struct ft_render *saved = rt->out;
	rt->out = &cap->r;
	exec_body(rt, push_scope(rt, sc), body);  /* an inner frame in jinja2: sets stay inside */
	rt->out = saved;
	return sb_done(rt, cap);
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
		/* a call block in transformers: its sets stay inside */
		unsigned saved = rt->train;
		rt->train = FT_SPAN_TRAIN;
		int rc = exec_body(rt, push_scope(rt, sc), st->a);
		rt->train = saved;
		return rc;
	}
	case N_WITH: {
		struct scope *inner = push_scope(rt, sc);
		for (int i = 0; i < st->nnames; i++)
			scope_set(rt, inner, st->names[i], eval(rt, sc, st->list[i]));
		return exec_body(rt, inner, st->a);
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
	enter(rt, body);
	for (int i = 0; i < body->n; i++) {
		int rc = exec_stmt(rt, sc, body->list[i]);
		if (rc) {
			rt->edepth--;
			return rc;
		}
	}
	rt->edepth--;
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

/* jinja2's title filter splits words at runs of [-\s({\[<] */
static bool title_sep(int32_t cp)
{
	return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ft_utf8_isspace(cp);
}

static struct jstr *case_map(struct rt *rt, const struct jstr *s, int mode)
{
	/* mode: 0 upper, 1 lower, 2 str.title, 3 capitalize, 4 jinja's title
	 * filter (item[0].upper() + item[1:].lower() for every word) */
	struct ft_buf *b = tb_new(rt, MAX_STRING);
	int rc = 0;
	switch (mode) {
	case 0: rc = ft_utf8_upper(s->p, s->len, b); break;
	case 1: rc = ft_utf8_lower(s->p, s->len, b); break;
	case 2: rc = ft_utf8_title(s->p, s->len, b); break;
	case 3: rc = ft_utf8_capitalize(s->p, s->len, b); break;
	default:
		for (size_t i = 0; i < s->len && !rc;) {
			size_t start = i;
			int32_t cp;
			int k = ft_utf8_decode(s->p + i, s->len - i, &cp);
			bool sep = title_sep(cp);
			i += (size_t)k;
			while (i < s->len) {
				k = ft_utf8_decode(s->p + i, s->len - i, &cp);
				if (title_sep(cp) != sep)
					break;
				i += (size_t)k;
			}
			/* [start, i) is one item: a run of separators or a word */
			size_t first = (size_t)ft_utf8_decode(s->p + start, s->len - start, &cp);
			rc = ft_utf8_upper(s->p + start, first, b);
			if (!rc)
				rc = ft_utf8_lower(s->p + start + first, i - start - first, b);
		}
	}
	if (rc)
		rt_fail(rt, NULL, rc == FT_E_TOOBIG ? "string too long" : "out of memory");
	char *p = ralloc(rt, b->len + 1);
	memcpy(p, b->data ? b->data : "", b->len);
	struct jstr *r = derived(rt, p, b->len, s);
	tmp_release(rt, b);
	return r;
}

/* Start of the run of whitespace (ws) or non-whitespace ending at e. */
static size_t back_over(const struct jstr *s, size_t lo, size_t e, bool ws)
{
	while (e > lo) {
		size_t q = e - 1;
		while (q > lo && ((unsigned char)s->p[q] & 0xC0) == 0x80)
			q--;
		int32_t cp;
		ft_utf8_decode(s->p + q, e - q, &cp);
		if (ft_utf8_isspace(cp) != ws)
			break;
		e = q;
	}
	return e;
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
	if (sepv.kind == V_NONE) {
		/* runs of whitespace; leading/trailing ignored */
		if (from_right) {
			/* Python's rsplit_whitespace, then reversed */
			size_t e = s->len;
			int64_t splits = 0;
			for (;;) {
				e = back_over(s, 0, e, true);
				if (!e)
					break;
				if (maxsplit >= 0 && splits >= maxsplit) {
					PUSH(mkstr(substr(rt, s, 0, e)));
					break;
				}
				size_t w = back_over(s, 0, e, false);
				PUSH(mkstr(substr(rt, s, w, e - w)));
				splits++;
				e = w;
			}
			for (size_t i = 0; i < n / 2; i++) {
				struct jval t = out[i];
				out[i] = out[n - 1 - i];
				out[n - 1 - i] = t;
			}
			goto done;
		}
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
				/* the rest, trailing whitespace and all */
				PUSH(mkstr(substr(rt, s, i, s->len - i)));
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
done:
#undef PUSH
	struct vlist *l = newlist(rt, n);
	memcpy(l->items, out, n * sizeof *out);
	return mklist(l);
}

static struct jval replace(struct rt *rt, const struct jstr *s, const struct jstr *old,
			   const struct jstr *new_, int64_t count)
{
	struct sb *b = sb_new(rt);
	size_t i = 0;
	int64_t done = 0;
	if (!old->len) {
		/* Python inserts new between every character */
		size_t n = ft_utf8_count(s->p, s->len);
		for (size_t k = 0; k <= n; k++) {
			if (count < 0 || done < count) {
				put(rt, &b->r, new_, 0);
				done++;
			}
			if (k < n) {
				int32_t cp;
				int len = ft_utf8_decode(s->p + i, s->len - i, &cp);
				put(rt, &b->r, substr(rt, s, i, (size_t)len), 0);
				i += (size_t)len;
			}
		}
		if (b->r.text.len > MAX_STRING)
			rt_fail(rt, NULL, "string too long");
		return mkstr(sb_done(rt, b));
	}
	for (;;) {
		const char *hit = count >= 0 && done >= count ? NULL :
				  memmem(s->p + i, s->len - i, old->p, old->len);
		if (!hit) {
			put(rt, &b->r, substr(rt, s, i, s->len - i), 0);
			break;
		}
		size_t h = (size_t)(hit - s->p);
		put(rt, &b->r, substr(rt, s, i, h - i), 0);
		put(rt, &b->r, new_, 0);
		i = h + old->len;
		done++;
		if (b->r.text.len > MAX_STRING) {
			rt_fail(rt, NULL, "string too long");
		}
	}
	return mkstr(sb_done(rt, b));
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

static NOINLINE struct jval call_method(struct rt *rt, struct vmethod *m, struct args *a, const struct node *at)
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
		return split(rt, s, arg(a, 0, "sep", nil), need_int(rt, arg(a, 1, "maxsplit", mkint(-1)), at),
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
			       need_int(rt, arg(a, 2, "count", mkint(-1)), at));
	case M_FIND: case M_RFIND: case M_SINDEX: case M_RINDEX: {
		if (!a->npos)
			rt_fail(rt, at, "%s() takes at least 1 argument", method_names[m->id]);
		int64_t i = find(s, need_str(rt, a->pos[0], "find arg", at),
				 m->id == M_RFIND || m->id == M_RINDEX);
		if (i < 0 && (m->id == M_SINDEX || m->id == M_RINDEX))
			rt_fail(rt, at, "substring not found");
		return mkint(i);
	}
	case M_REMOVEPREFIX: case M_REMOVESUFFIX: {
		if (a->npos != 1)
			rt_fail(rt, at, "%s() takes exactly one argument", method_names[m->id]);
		const struct jstr *x = need_str(rt, a->pos[0], method_names[m->id], at);
		if (x->len > s->len)
			return self;
		if (m->id == M_REMOVEPREFIX)
			return memcmp(s->p, x->p, x->len) ? self : mkstr(substr(rt, s, x->len, s->len - x->len));
		return memcmp(s->p + s->len - x->len, x->p, x->len) ? self :
		       mkstr(substr(rt, s, 0, s->len - x->len));
	}
	case M_PARTITION: case M_RPARTITION: {
		if (a->npos != 1)
			rt_fail(rt, at, "%s() takes exactly one argument", method_names[m->id]);
		const struct jstr *sep = need_str(rt, a->pos[0], "partition arg", at);
		if (!sep->len)
			rt_fail(rt, at, "empty separator");
		int64_t cp = find(s, sep, m->id == M_RPARTITION);
		struct vlist *t = newlist(rt, 3);
		t->tuple = true;
		struct jval empty = mkstr(lit(rt, "", 0));
		if (cp < 0) {
			t->items[0] = m->id == M_PARTITION ? self : empty;
			t->items[1] = empty;
			t->items[2] = m->id == M_PARTITION ? empty : self;
		} else {
			size_t at_b = ft_utf8_offset(s->p, s->len, (size_t)cp);
			t->items[0] = mkstr(substr(rt, s, 0, at_b));
			t->items[1] = mkstr(substr(rt, s, at_b, sep->len));
			t->items[2] = mkstr(substr(rt, s, at_b + sep->len, s->len - at_b - sep->len));
		}
		return mklist(t);
	}
	case M_LJUST: case M_RJUST: case M_CENTER: case M_ZFILL: {
		if (a->npos < 1 || a->npos > (m->id == M_ZFILL ? 1 : 2))
			rt_fail(rt, at, "%s() takes the width and at most a fill character", method_names[m->id]);
		int64_t width = need_int(rt, a->pos[0], at);
		const struct jstr *fill = a->npos > 1 ? need_str(rt, a->pos[1], "fill character", at) :
					  lit(rt, m->id == M_ZFILL ? "0" : " ", 1);
		if (ft_utf8_count(fill->p, fill->len) != 1)
			rt_fail(rt, at, "The fill character must be exactly one character long");
		int64_t len = (int64_t)ft_utf8_count(s->p, s->len);
		if (width <= len)
			return self;
		if (width > (int64_t)(MAX_STRING / 4))
			rt_fail(rt, at, "string too long");
		int64_t marg = width - len, left = m->id == M_LJUST ? 0 : m->id == M_CENTER ?
			       marg / 2 + (marg & width & 1) : marg;
		struct sb *b = sb_new(rt);
		size_t signlen = 0;
		if (m->id == M_ZFILL && s->len && (s->p[0] == '+' || s->p[0] == '-')) {
			signlen = 1;  /* zeros go after the sign */
			put(rt, &b->r, substr(rt, s, 0, 1), 0);
		}
		for (int64_t k = 0; k < left; k++)
			put(rt, &b->r, fill, 0);
		put(rt, &b->r, substr(rt, s, signlen, s->len - signlen), 0);
		for (int64_t k = left; k < marg; k++)
			put(rt, &b->r, fill, 0);
		return mkstr(sb_done(rt, b));
	}
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
		if (m->id == M_KEYS) {
			struct vlist *kv = newlist(rt, keys->n);
			memcpy(kv->items, keys->items, keys->n * sizeof *keys->items);
			kv->view = VIEW_KEYS;
			return mklist(kv);
		}
		struct vlist *l = newlist(rt, keys->n);
		l->view = m->id == M_ITEMS ? VIEW_ITEMS : VIEW_VALUES;
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
	case M_CHANGED: {
		/* true when the arguments differ from the last call's */
		struct vlist *t = newlist(rt, (size_t)a->npos);
		memcpy(t->items, a->pos, (size_t)a->npos * sizeof *a->pos);
		t->tuple = true;
		struct loopinfo *L = self.loop;
		if (L->has_changed && equals(rt, L->last_changed, mklist(t)))
			return mkbool(false);
		L->last_changed = mklist(t);
		L->has_changed = true;
		return mkbool(true);
	}
	case M_CYCLE:
		if (!a->npos)
			rt_fail(rt, at, "no items for cycling given");
		return a->pos[self.loop->index0 % a->npos];
	}
	rt_fail(rt, at, "unknown method");
}

/* ---- globals ---- */

static NOINLINE struct jval call_global(struct rt *rt, int id, struct args *a, const struct node *at)
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
		uint64_t n = 0;  /* unsigned: stop - start may not fit int64 */
		if (step > 0 && stop > start)
			n = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
		else if (step < 0 && stop < start)
			n = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)0 - (uint64_t)step) + 1;
		if (n > MAX_RANGE)
			rt_fail(rt, at, "range too big, maximum size for range is %d", MAX_RANGE);
		struct vlist *l = newlist(rt, (size_t)n);
		for (uint64_t i = 0; i < n; i++)
			l->items[i] = mkint(start + (int64_t)i * step);
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
	F_UPPER, F_WORDCOUNT, F_BATCH, F_CENTER, F_SLICE, F_TRUNCATE, F_GROUPBY, F_COUNT_
};

static const char *const filter_names[] = {
	"abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
	"float", "format", "indent", "int", "items", "join", "last", "length", "list", "lower",
	"map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe",
	"select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique",
	"upper", "wordcount", "batch", "center", "slice", "truncate", "groupby",
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
	struct sb *b = sb_new(rt);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			put(rt, &b->r, s, 0);
		struct jval item = l->items[i];
		if (attribute)
			item = attr_path(rt, item, mkstr(lit(rt, attribute, strlen(attribute))), at);
		put(rt, &b->r, to_str(rt, item), 0);
		if (b->r.text.len > MAX_STRING) {
			rt_fail(rt, at, "string too long");
		}
	}
	return mkstr(sb_done(rt, b));
}

/* The sort key jinja2's make_attrgetter gives: the item or its attribute
 * path, strings lowercased unless case_sensitive (ignore_case). */
static struct jval sort_key(struct rt *rt, struct jval item, struct jval attribute,
			    bool case_sensitive, const struct node *at)
{
	struct jval k = attribute.kind == V_NONE ? item : attr_path(rt, item, attribute, at);
	if (!case_sensitive && k.kind == V_STR)
		k = mkstr(case_map(rt, k.s, 1));
	return k;
}

struct sortitem {
	struct jval key, val;
};

/* Stable merge sort by key with Python's '<' (the comparison may fail:
 * everything lives in the render arena, so nothing leaks then). */
static void merge_sort(struct rt *rt, struct sortitem *v, struct sortitem *tmp, size_t n,
		       const struct node *at)
{
	if (n < 2)
		return;
	size_t h = n / 2;
	merge_sort(rt, v, tmp, h, at);
	merge_sort(rt, v + h, tmp, n - h, at);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n)
		tmp[k++] = compare(rt, v[j].key, v[i].key, at) < 0 ? v[j++] : v[i++];
	while (i < h)
		tmp[k++] = v[i++];
	while (j < n)
		tmp[k++] = v[j++];
	memcpy(v, tmp, n * sizeof *v);
}

/* sorted(l, key=..., reverse=...): with reverse, equal keys keep their
 * order, as in Python. */
static struct vlist *sorted(struct rt *rt, struct vlist *l, bool reverse, bool case_sensitive,
			    struct jval attribute, const struct node *at)
{
	size_t n = l->n;
	struct sortitem *it = ralloc(rt, (n + 1) * sizeof *it);
	struct sortitem *tmp = ralloc(rt, (n + 1) * sizeof *tmp);
	/* jinja2's make_multi_attrgetter: the key is a list, one entry per
	 * comma-separated attribute (so equal keys compare by ==, never by <) */
	struct jval parts[16];
	int np = 0;
	if (attribute.kind == V_STR) {
		const struct jstr *as = attribute.s;
		for (size_t b = 0, e; b <= as->len && np < 16; b = e + 1) {
			const char *c = memchr(as->p + b, ',', as->len - b);
			e = c ? (size_t)(c - as->p) : as->len;
			parts[np++] = mkstr(substr(rt, as, b, e - b));
		}
	} else {
		parts[np++] = attribute;
	}
	for (size_t i = 0; i < n; i++) {
		/* reverse: sort the reversed list ascending, then reverse back */
		size_t src = reverse ? n - 1 - i : i;
		it[i].val = l->items[src];
		struct vlist *key = newlist(rt, (size_t)np);
		for (int k = 0; k < np; k++)
			key->items[k] = sort_key(rt, l->items[src], parts[k], case_sensitive, at);
		it[i].key = mklist(key);
	}
	merge_sort(rt, it, tmp, n, at);
	struct vlist *out = newlist(rt, n);
	for (size_t i = 0; i < n; i++)
		out->items[i] = it[reverse ? n - 1 - i : i].val;
	return out;
}

static struct jval select_(struct rt *rt, struct jval v, struct args *a, bool want, bool byattr,
			   const struct node *at)
{
	/* jinja2's select_or_reject: nothing is checked for an empty input */
	if (!truthy(v))
		return mkgen(newlist(rt, 0));
	struct vlist *l = to_list(rt, v, at);
	struct vlist *out = newlist(rt, l->n);
	out->n = 0;
	int first = byattr ? 1 : 0;
	if (byattr && !a->npos)
		rt_fail(rt, at, "Missing parameter for attribute name");
	struct jval attr = byattr ? a->pos[0] : none();
	int tid = -1;
	struct args targs = { 0 };
	if (a->npos > first) {
		const struct jstr *tn = need_str(rt, a->pos[first], "test name", at);
		tid = jinja_test_id(tn->p, tn->len);
		if (tid < 0)
			rt_fail(rt, at, "no test named '%.*s'", (int)tn->len, tn->p);
		targs.pos = a->pos + first + 1;
		targs.npos = a->npos - first - 1;
		targs.kwn = a->kwn;
		targs.kwv = a->kwv;
		targs.nkw = a->nkw;
	} else if (a->nkw) {
		rt_fail(rt, at, "bool() takes no keyword arguments");
	}
	for (size_t i = 0; i < l->n; i++) {
		struct jval x = byattr ? attr_path(rt, l->items[i], attr, at) : l->items[i];
		bool r = tid < 0 ? truthy(x) : apply_test(rt, tid, x, &targs, at);
		if (r == want)
			out->items[out->n++] = l->items[i];
	}
	return mkgen(out);
}

/* s without Python whitespace on both ends: [*b, *e) */
static void ws_trim(const struct jstr *s, size_t *b, size_t *e)
{
	size_t i = 0, j = s->len;
	while (i < j) {
		int32_t cp;
		int k = ft_utf8_decode(s->p + i, j - i, &cp);
		if (!ft_utf8_isspace(cp))
			break;
		i += (size_t)k;
	}
	*b = i;
	*e = back_over(s, i, j, true);
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* Python's int(s, base) for ASCII digits. 0 ok, -1 ValueError, -2 too big
 * for 64 bits. */
static int py_int(const struct jstr *s, int base, int64_t *out)
{
	size_t i, e;
	ws_trim(s, &i, &e);
	const char *p = s->p;
	bool neg = false;
	if (i < e && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	if (e - i >= 2 && p[i] == '0') {
		char x = (char)(p[i + 1] | 0x20);
		int pb = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
		if (pb && (base == 0 || base == pb)) {
			base = pb;
			i += 2;
			if (i < e && p[i] == '_')
				i++;
		}
	}
	if (base == 0) {
		base = 10;
		/* base 0 forbids leading zeros in a non-zero decimal */
		if (i < e && p[i] == '0')
			for (size_t k = i; k < e; k++)
				if (p[k] != '0' && p[k] != '_')
					return -1;
	}
	if (i >= e)
		return -1;
	uint64_t v = 0;
	bool big = false;
	for (size_t k = i; k < e; k++) {
		if (p[k] == '_') {
			if (k == i || k + 1 >= e || p[k + 1] == '_')
				return -1;
			continue;
		}
		int d = digit_value(p[k]);
		if (d >= base)
			return -1;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			big = true;
		else
			v = v * (uint64_t)base + (uint64_t)d;
	}
	if (big || v > (uint64_t)INT64_MAX + neg)
		return -2;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Python's float(s): decimal with '_' between digits, inf, infinity, nan. */
static bool py_float(const struct jstr *s, double *out)
{
	size_t i, e;
	ws_trim(s, &i, &e);
	const char *p = s->p;
	char buf[128];
	size_t o = 0;
	if (i < e && (p[i] == '+' || p[i] == '-'))
		buf[o++] = p[i++];
	size_t rest = e - i;
	static const char *const words[] = { "inf", "infinity", "nan" };
	for (size_t w = 0; w < 3; w++)
		if (rest == strlen(words[w]) && !strncasecmp(p + i, words[w], rest)) {
			double d = w == 2 ? NAN : INFINITY;
			*out = o && buf[0] == '-' ? -d : d;
			return true;
		}
	int digits = 0, state = 0;  /* 0 int part, 1 fraction, 2 exponent */
	bool prev_digit = false;
	for (size_t k = i; k < e; k++) {
		char c = p[k];
		if (o >= sizeof buf - 2)
			return false;
		if (c >= '0' && c <= '9') {
			buf[o++] = c;
			digits += state < 2;
			prev_digit = true;
			continue;
		}
		if (c == '_' && prev_digit && k + 1 < e && p[k + 1] >= '0' && p[k + 1] <= '9')
			continue;
		prev_digit = false;
		if (c == '.' && state == 0) {
			state = 1;
			buf[o++] = c;
		} else if ((c == 'e' || c == 'E') && state < 2 && digits) {
			state = 2;
			buf[o++] = 'e';
			if (k + 1 < e && (p[k + 1] == '+' || p[k + 1] == '-'))
				buf[o++] = p[++k];
			if (k + 1 >= e || p[k + 1] < '0' || p[k + 1] > '9')
				return false;
		} else {
			return false;
		}
	}
	if (!digits)
		return false;
	buf[o] = 0;
	*out = strtod(buf, NULL);
	return true;
}

/* jinja2's int filter: int(value) (int(value, base) for strings), else
 * int(float(value)), else the default. */
static struct jval to_int(struct rt *rt, struct jval v, struct jval dflt, int64_t base,
			  const struct node *at)
{
	const char *big = "integer result beyond 64 bits (Python's ints are unbounded): not supported";
	double d;
	switch (v.kind) {
	case V_INT: case V_BIGINT: return v;
	case V_BOOL: return mkint(v.b);
	case V_UNDEF: undef_fail(rt, at, v);
	case V_FLOAT:
		d = v.f;
		break;
	case V_STR: {
		int64_t i;
		if (base != 0 && (base < 2 || base > 36))
			rt_fail(rt, at, "int() base must be >= 2 and <= 36, or 0");
		int rc = py_int(v.s, (int)base, &i);
		if (rc == 0)
			return mkint(i);
		if (rc == -2)
			rt_fail(rt, at, "%s", big);
		if (!py_float(v.s, &d))
			return dflt;
		break;
	}
	default:
		return dflt;
	}
	if (isnan(d))
		return dflt;
	if (isinf(d))
		rt_fail(rt, at, "cannot convert float infinity to integer");
	if (d >= 9223372036854775808.0 || d < -9223372036854775808.0)
		rt_fail(rt, at, "%s", big);
	return mkint((int64_t)d);
}

/* Python's round(x, ndigits): exact half-to-even on the decimal value of
 * x; ints stay ints. */
static struct jval py_round(struct rt *rt, struct jval v, int64_t nd, const struct node *at)
{
	if (v.kind != V_FLOAT) {
		int64_t x = inum(v);
		if (nd >= 0)
			return mkint(x);
		if (nd < -18)
			return mkint(0);
		int64_t p = 1;
		for (int64_t k = 0; k < -nd; k++)
			p *= 10;
		int64_t q = x / p, r = x % p;
		if (r < 0) {
			q--;
			r += p;
		}
		/* r in [0, p): compare 2r with p, ties to even */
		if (r > p - r || (r == p - r && (q & 1)))
			q++;
		int64_t out;
		if (__builtin_mul_overflow(q, p, &out))
			rt_fail(rt, at, "integer result beyond 64 bits (Python's ints are unbounded): not supported");
		return mkint(out);
	}
	double x = v.f;
	if (!isfinite(x) || x == 0)
		return v;
	if (nd > 323)
		return v;
	if (nd < -308)
		return mkfloat(0.0 * x);
	char buf[720];
	if (nd >= 0) {
		snprintf(buf, sizeof buf, "%.*f", (int)nd, x);  /* glibc rounds the exact value, ties to even */
		return mkfloat(strtod(buf, NULL));
	}
	/* significant digits up to the 10**-nd place */
	int e10 = (int)floor(log10(fabs(x)));
	if (pow(10, e10) > fabs(x))
		e10--;
	else if (pow(10, e10 + 1) <= fabs(x))
		e10++;
	int64_t sig = e10 + 1 + nd;  /* digits kept */
	if (sig <= 0) {
		/* |x| < 10**-nd: 0, or 10**-nd when above half of it */
		double unit = pow(10, (double)-nd), half = unit / 2;
		double r = fabs(x) > half || (sig == 0 && fabs(x) > half) ? unit : 0.0;
		return mkfloat(copysign(r, x));
	}
	snprintf(buf, sizeof buf, "%.*e", (int)(sig - 1), x);
	return mkfloat(strtod(buf, NULL));
}

/* Parameters of each filter after the value (jinja2's, and transformers'
 * tojson), so calls are checked as Python checks them. */
struct signature {
	const char *params[5];
	int required;
	bool variadic;  /* *args, **kwargs: the filter checks itself */
};

static const struct signature filter_sigs[F_COUNT_] = {
	[F_ATTR] = { { "name" }, 1, false },
	[F_D] = { { "default_value", "boolean" }, 0, false },
	[F_DEFAULT] = { { "default_value", "boolean" }, 0, false },
	[F_DICTSORT] = { { "case_sensitive", "by", "reverse" }, 0, false },
	[F_FLOAT] = { { "default" }, 0, false },
	[F_FORMAT] = { { NULL }, 0, true },
	[F_INDENT] = { { "width", "first", "blank" }, 0, false },
	[F_INT] = { { "default", "base" }, 0, false },
	[F_JOIN] = { { "d", "attribute" }, 0, false },
	[F_MAP] = { { NULL }, 0, true },
	[F_MAX] = { { "case_sensitive", "attribute" }, 0, false },
	[F_MIN] = { { "case_sensitive", "attribute" }, 0, false },
	[F_REJECT] = { { NULL }, 0, true },
	[F_REJECTATTR] = { { NULL }, 0, true },
	[F_REPLACE] = { { "old", "new", "count" }, 2, false },
	[F_ROUND] = { { "precision", "method" }, 0, false },
	[F_SELECT] = { { NULL }, 0, true },
	[F_SELECTATTR] = { { NULL }, 0, true },
	[F_SORT] = { { "reverse", "case_sensitive", "attribute" }, 0, false },
	[F_SUM] = { { "attribute", "start" }, 0, false },
	[F_TOJSON] = { { "ensure_ascii", "indent", "separators", "sort_keys" }, 0, false },
	[F_TRIM] = { { "chars" }, 0, false },
	[F_UNIQUE] = { { "case_sensitive", "attribute" }, 0, false },
	[F_BATCH] = { { "linecount", "fill_with" }, 1, false },
	[F_CENTER] = { { "width" }, 0, false },
	[F_SLICE] = { { "slices", "fill_with" }, 1, false },
	[F_TRUNCATE] = { { "length", "killwords", "end", "leeway" }, 0, false },
	[F_GROUPBY] = { { "attribute", "default", "case_sensitive" }, 1, false },
};

/* TypeError for a call that does not fit sig, as Python raises it. */
static void check_call(struct rt *rt, const char *fn, const struct signature *sig,
		       const struct args *a, const struct node *at)
{
	if (sig->variadic)
		return;
	int np = 0;
	while (np < 5 && sig->params[np])
		np++;
	if (a->npos > np)
		rt_fail(rt, at, "%s() takes %d positional argument(s) but %d were given", fn, np + 1,
			a->npos + 1);
	for (int k = 0; k < a->nkw; k++) {
		int i = 0;
		while (i < np && strcmp(sig->params[i], a->kwn[k]))
			i++;
		if (i == np)
			rt_fail(rt, at, "%s() got an unexpected keyword argument '%s'", fn, a->kwn[k]);
		if (i < a->npos)
			rt_fail(rt, at, "%s() got multiple values for argument '%s'", fn, a->kwn[k]);
	}
	for (int i = a->npos; i < sig->required; i++)
		if (!has_arg(a, -1, sig->params[i]))
			rt_fail(rt, at, "%s() missing required argument: '%s'", fn, sig->params[i]);
}

static NOINLINE struct jval apply_filter(struct rt *rt, int id, struct jval v, struct args *a,
				const struct node *at, struct scope *sc)
{
	struct jval nil = none();
	check_call(rt, filter_names[id], &filter_sigs[id], a, at);
	switch (id) {
	case F_ABS:
		if ((v.kind == V_INT && v.i == INT64_MIN) || v.kind == V_BIGINT)
			rt_fail(rt, at, "integer result beyond 64 bits (Python's ints are unbounded): not supported");
		if (v.kind == V_INT || v.kind == V_BOOL)
			return mkint(llabs(inum(v)));
		if (v.kind == V_FLOAT)
			return mkfloat(fabs(v.f));
		rt_fail(rt, at, "bad operand type for abs(): '%s'", type_name(v));
	case F_ATTR: {
		struct jval name = arg(a, 0, "name", nil);
		const struct jstr *n = need_str(rt, name, "attribute name", at);
		return getattr_x(rt, v, n->p, n->len, at, false);  /* attributes only */
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
		if (v.kind == V_UNDEF)
			undef_fail(rt, at, v);
		if (!is_map(v))
			rt_fail(rt, at, "'%s' object has no attribute 'items'", type_name(v));
		bool cs = truthy(arg(a, 0, "case_sensitive", mkbool(false)));
		struct jval by = arg(a, 1, "by", mkstr(lit(rt, "key", 3)));
		bool rev = truthy(arg(a, 2, "reverse", mkbool(false)));
		struct jval items = call_method(rt, &(struct vmethod){ v, M_ITEMS }, a, at);
		bool byval = by.kind == V_STR && str_eq(by.s, "value", 5);
		if (!byval && !(by.kind == V_STR && str_eq(by.s, "key", 3)))
			rt_fail(rt, at, "You can only sort by either \"key\" or \"value\"");
		return mklist(sorted(rt, items.l, rev, cs, mkint(byval ? 1 : 0), at));
	}
	case F_E: case F_ESCAPE: {
		struct jstr *s = to_str(rt, v);
		struct ft_buf *b = tb_new(rt, MAX_STRING);
		int rc = 0;
		for (size_t i = 0; i < s->len && !rc; i++) {
			switch (s->p[i]) {
			case '&': rc = ft_buf_puts(b, "&amp;"); break;
			case '<': rc = ft_buf_puts(b, "&lt;"); break;
			case '>': rc = ft_buf_puts(b, "&gt;"); break;
			case '"': rc = ft_buf_puts(b, "&#34;"); break;
			case '\'': rc = ft_buf_puts(b, "&#39;"); break;
			default: rc = ft_buf_putc(b, s->p[i]);
			}
		}
		if (rc)
			rt_fail(rt, at, "string too long");
		char *p = ralloc(rt, b->len + 1);
		memcpy(p, b->data ? b->data : "", b->len);
		struct jstr *r = derived(rt, p, b->len, s);
		tmp_release(rt, b);
		return mkstr(r);
	}
	case F_FIRST: {
		if (is_gen(v))  /* next(iter(gen)): one item used up */
			return v.l->pos < v.l->n ? v.l->items[v.l->pos++] :
			       undef_hint("No first item, sequence was empty.");
		struct vlist *l = to_list(rt, v, at);
		return l->n ? l->items[0] : undef_hint("No first item, sequence was empty.");
	}
	case F_LAST: {
		if (is_gen(v))
			rt_fail(rt, at, "'generator' object is not reversible");
		struct vlist *l = to_list(rt, v, at);
		return l->n ? l->items[l->n - 1] : undef_hint("No last item, sequence was empty.");
	}
	case F_FLOAT: {
		double d;
		if (v.kind == V_UNDEF)
			undef_fail(rt, at, v);
		if (v.kind == V_FLOAT)
			return v;
		if (is_num(v))
			return mkfloat(num(v));
		if (v.kind == V_STR && py_float(v.s, &d))
			return mkfloat(d);
		return arg(a, 0, "default", mkfloat(0.0));
	}
	case F_FORMAT: {
		/* soft_str(value) % (kwargs or args) */
		if (a->npos && a->nkw)
			rt_fail(rt, at, "can't handle positional and keyword arguments at the same time");
		if (a->nkw) {
			struct vdict *d = newdict(rt, (size_t)a->nkw);
			for (int k = 0; k < a->nkw; k++)
				dict_set(rt, d, mkstr(lit(rt, a->kwn[k], strlen(a->kwn[k]))), a->kwv[k]);
			struct jval dv = { .kind = V_DICT };
			dv.d = d;
			return percent_format(rt, to_str(rt, v), dv, at);
		}
		struct vlist *l = newlist(rt, (size_t)a->npos);
		memcpy(l->items, a->pos, (size_t)a->npos * sizeof *a->pos);
		l->tuple = true;
		return percent_format(rt, to_str(rt, v), mklist(l), at);
	}
	case F_INDENT: {
		/* jinja2 appends "\n" to the value: it must be a string */
		if (v.kind == V_UNDEF)
			undef_fail(rt, at, v);
		if (v.kind != V_STR)
			rt_fail(rt, at, "unsupported operand type(s) for +=: '%s' and 'str'", type_name(v));
		struct jval w = arg(a, 0, "width", mkint(4));
		bool first = truthy(arg(a, 1, "first", mkbool(false)));
		bool blank = truthy(arg(a, 2, "blank", mkbool(false)));
		struct jstr *pad = w.kind == V_STR ? w.s : NULL;
		if (!pad) {
			int64_t n = need_int(rt, w, at);
			if (n < 0)
				n = 0;
			if (n > 10000)
				rt_fail(rt, at, "indent width too large");
			char *spaces = ralloc(rt, (size_t)n + 1);
			memset(spaces, ' ', (size_t)n);
			pad = lit(rt, spaces, (size_t)n);
		}
		struct jstr *s = to_str(rt, v);
		struct sb *b = sb_new(rt);
		size_t i = 0;
		bool line_first = true;
		while (i <= s->len) {
			const char *nl = memchr(s->p + i, '\n', s->len - i);
			size_t e = nl ? (size_t)(nl - s->p) : s->len;
			bool empty = e == i;
			if ((!line_first || first) && (blank || !empty))
				put(rt, &b->r, pad, 0);
			put(rt, &b->r, substr(rt, s, i, e - i + (nl ? 1 : 0)), 0);
			line_first = false;
			if (!nl)
				break;
			i = e + 1;
		}
		return mkstr(sb_done(rt, b));
	}
	case F_INT:
		return to_int(rt, v, arg(a, 0, "default", mkint(0)), need_int(rt, arg(a, 1, "base", mkint(10)), at), at);
	case F_ITEMS:
		if (v.kind == V_UNDEF)
			return mkgen(newlist(rt, 0));
		if (!is_map(v))
			rt_fail(rt, at, "Can only get item pairs from a mapping.");
		{
			struct jval items = call_method(rt, &(struct vmethod){ v, M_ITEMS }, a, at);
			return mkgen(items.l);  /* a generator in jinja2, not a view */
		}
	case F_JOIN: {
		struct jval attr = arg(a, 1, "attribute", nil);
		const char *an = NULL;
		if (attr.kind == V_STR)
			an = ft_arena_strndup(rt->arena, attr.s->p, attr.s->len);
		return join(rt, arg(a, 0, "d", mkstr(lit(rt, "", 0))), v, at, an, sc);
	}
	case F_LIST:
		if (v.kind == V_LIST && !v.l->tuple && v.l->view == VIEW_NONE)
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
		/* jinja2's do_map: nothing is checked for an empty input */
		if (!truthy(v))
			return mkgen(newlist(rt, 0));
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		if (!a->npos && has_arg(a, -1, "attribute")) {
			struct jval attr = arg(a, -1, "attribute", nil);
			struct jval d = arg(a, -1, "default", nil);
			for (int k = 0; k < a->nkw; k++)
				if (strcmp(a->kwn[k], "attribute") && strcmp(a->kwn[k], "default"))
					rt_fail(rt, at, "Unexpected keyword argument '%s'", a->kwn[k]);
			for (size_t i = 0; i < l->n; i++) {
				out->items[i] = attr_path(rt, l->items[i], attr, at);
				if (d.kind != V_NONE && out->items[i].kind == V_UNDEF)
					out->items[i] = d;
			}
			return mkgen(out);
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
		return mkgen(out);
	}
	case F_MAX: case F_MIN: {
		struct vlist *l = to_list(rt, v, at);
		if (!l->n)
			return undef_hint("No aggregated item, sequence was empty.");
		/* Python's min()/max(): the first of the smallest/largest */
		bool cs = truthy(arg(a, 0, "case_sensitive", mkbool(false)));
		struct jval attr = arg(a, 1, "attribute", nil);
		size_t best = 0;
		struct jval bk = sort_key(rt, l->items[0], attr, cs, at);
		for (size_t i = 1; i < l->n; i++) {
			struct jval k = sort_key(rt, l->items[i], attr, cs, at);
			if (id == F_MAX ? compare(rt, bk, k, at) < 0 : compare(rt, k, bk, at) < 0) {
				best = i;
				bk = k;
			}
		}
		return l->items[best];
	}
	case F_REJECT: return select_(rt, v, a, false, false, at);
	case F_REJECTATTR: return select_(rt, v, a, false, true, at);
	case F_SELECT: return select_(rt, v, a, true, false, at);
	case F_SELECTATTR: return select_(rt, v, a, true, true, at);
	case F_REPLACE: {
		struct jstr *s = to_str(rt, v);
		struct jval cnt = arg(a, 2, "count", nil);
		return replace(rt, s, to_str(rt, arg(a, 0, "old", nil)), to_str(rt, arg(a, 1, "new", nil)),
			       cnt.kind == V_NONE ? -1 : need_int(rt, cnt, at));
	}
	case F_REVERSE: {
		if (v.kind == V_STR)
			return slice_(rt, v, nil, nil, mkint(-1), at);
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		for (size_t i = 0; i < l->n; i++)
			out->items[i] = l->items[l->n - 1 - i];
		return mkgen(out);
	}
	case F_ROUND: {
		struct jval pv = arg(a, 0, "precision", mkint(0));
		struct jval method = arg(a, 1, "method", mkstr(lit(rt, "common", 6)));
		bool ceil_ = method.kind == V_STR && str_eq(method.s, "ceil", 4);
		bool floor_ = method.kind == V_STR && str_eq(method.s, "floor", 5);
		if (!ceil_ && !floor_ && !(method.kind == V_STR && str_eq(method.s, "common", 6)))
			rt_fail(rt, at, "method must be common, ceil or floor");
		if (!is_num(v) || v.kind == V_BIGINT)
			rt_fail(rt, at, "type %s doesn't define __round__ method", type_name(v));
		if (pv.kind != V_INT && pv.kind != V_BOOL)
			rt_fail(rt, at, "'%s' object cannot be interpreted as an integer", type_name(pv));
		int64_t prec = inum(pv);
		if (ceil_ || floor_) {
			/* math.ceil(value * 10**precision) / 10**precision */
			double x = num(v) * pow(10, (double)prec);
			double r = ceil_ ? ceil(x) : floor(x);
			if (!isfinite(r))
				rt_fail(rt, at, "cannot convert float %s to integer", isnan(r) ? "NaN" : "infinity");
			return mkfloat(r / pow(10, (double)prec));
		}
		return py_round(rt, v, prec, at);
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
	case F_TOJSON:
		return mkstr(tojson(rt, v, a, at));
	case F_TRIM: {
		struct jval c = arg(a, 0, "chars", nil);
		return mkstr(strip(rt, to_str(rt, v), c.kind == V_NONE ? NULL : to_str(rt, c), true, true));
	}
	case F_UNIQUE: {
		struct vlist *l = to_list(rt, v, at), *out = newlist(rt, l->n);
		bool cs = truthy(arg(a, 0, "case_sensitive", mkbool(false)));
		struct jval attr = arg(a, 1, "attribute", nil);
		struct jval *keys = ralloc(rt, (l->n + 1) * sizeof *keys);
		out->n = 0;
		for (size_t i = 0; i < l->n; i++) {
			struct jval k = sort_key(rt, l->items[i], attr, cs, at);
			if (k.kind == V_LIST || k.kind == V_DICT || k.kind == V_JSON || k.kind == V_NS)
				rt_fail(rt, at, "unhashable type: '%s'", type_name(k));
			bool seen = false;
			for (size_t j = 0; j < out->n && !seen; j++)
				seen = equals(rt, k, keys[j]);
			if (!seen) {
				keys[out->n] = k;
				out->items[out->n++] = l->items[i];
			}
		}
		return mkgen(out);
	}
	case F_WORDCOUNT: {
		/* len(re.findall(r"\w+", s)): runs of letters, numbers and '_' */
		struct jstr *str = to_str(rt, v);
		int64_t words = 0;
		bool in_word = false;
		for (size_t i = 0; i < str->len;) {
			int32_t cp;
			i += (size_t)ft_utf8_decode(str->p + i, str->len - i, &cp);
			utf8proc_category_t c = utf8proc_category(cp);
			bool w = cp == '_' || (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
				 (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
			words += w && !in_word;
			in_word = w;
		}
		return mkint(words);
	}
	case F_CENTER: {
		/* str.center(width) */
		struct jstr *str = to_str(rt, v);
		int64_t width = need_int(rt, arg(a, 0, "width", mkint(80)), at);
		int64_t len = (int64_t)ft_utf8_count(str->p, str->len);
		if (width <= len)
			return mkstr(str);
		if (width > (int64_t)MAX_STRING)
			rt_fail(rt, at, "string too long");
		int64_t marg = width - len, left = marg / 2 + (marg & width & 1);
		char *spaces = ralloc(rt, (size_t)marg + 1);
		memset(spaces, ' ', (size_t)marg);
		struct sb *b = sb_new(rt);
		put_lit(rt, &b->r, spaces, (size_t)left);
		put(rt, &b->r, str, 0);
		put_lit(rt, &b->r, spaces, (size_t)(marg - left));
		return mkstr(sb_done(rt, b));
	}
	case F_BATCH: case F_SLICE: {
		struct vlist *l = to_list(rt, v, at);
		struct jval cnt = arg(a, 0, id == F_BATCH ? "linecount" : "slices", nil);
		bool fill = has_arg(a, 1, "fill_with") && arg(a, 1, "fill_with", nil).kind != V_NONE;
		struct jval fillv = arg(a, 1, "fill_with", nil);
		if (cnt.kind != V_INT && cnt.kind != V_BOOL)
			rt_fail(rt, at, "'%s' object cannot be interpreted as an integer", type_name(cnt));
		int64_t k = need_int(rt, cnt, at);
		if (id == F_BATCH) {
			/* lists of k items, the last filled up to k with fill_with */
			if (k <= 0)
				rt_fail(rt, at, "batch size must be positive");
			size_t nb = (l->n + (size_t)k - 1) / (size_t)k;
			struct vlist *out = newlist(rt, nb);
			for (size_t bi = 0; bi < nb; bi++) {
				size_t from = bi * (size_t)k, n = l->n - from < (size_t)k ? l->n - from : (size_t)k;
				struct vlist *one = newlist(rt, fill ? (size_t)k : n);
				memcpy(one->items, l->items + from, n * sizeof *one->items);
				for (size_t q = n; fill && q < (size_t)k; q++)
					one->items[q] = fillv;
				out->items[bi] = mklist(one);
			}
			return mkgen(out);
		}
		/* k slices, the first len % k one longer (jinja2's do_slice) */
		if (k <= 0)
			rt_fail(rt, at, k ? "slices must be positive" : "integer division or modulo by zero");
		if (k > MAX_RANGE)
			rt_fail(rt, at, "too many slices");
		size_t per = l->n / (size_t)k, extra = l->n % (size_t)k, offset = 0;
		struct vlist *out = newlist(rt, (size_t)k);
		for (size_t si = 0; si < (size_t)k; si++) {
			size_t start = offset + si * per;
			if (si < extra)
				offset++;
			size_t end = offset + (si + 1) * per;
			bool pad = fill && si >= extra;
			struct vlist *one = newlist(rt, end - start + pad);
			memcpy(one->items, l->items + start, (end - start) * sizeof *one->items);
			if (pad)
				one->items[end - start] = fillv;
			out->items[si] = mklist(one);
		}
		return mkgen(out);
	}
	case F_GROUPBY: {
		/* sorted by the key, then runs of equal keys: (grouper, list)
		 * tuples; the grouper is the first item's own key */
		struct jval attr = arg(a, 0, "attribute", nil), dflt = arg(a, 1, "default", nil);
		bool cs = truthy(arg(a, 2, "case_sensitive", mkbool(false)));
		struct vlist *l = to_list(rt, v, at);
		struct sortitem *it = ralloc(rt, (l->n + 1) * sizeof *it);
		struct sortitem *tmp = ralloc(rt, (l->n + 1) * sizeof *tmp);
		for (size_t i = 0; i < l->n; i++) {
			struct jval k = attr_path(rt, l->items[i], attr, at);
			if (dflt.kind != V_NONE && k.kind == V_UNDEF)
				k = dflt;
			if (!cs && k.kind == V_STR)
				k = mkstr(case_map(rt, k.s, 1));
			it[i] = (struct sortitem){ k, l->items[i] };
		}
		merge_sort(rt, it, tmp, l->n, at);
		struct vlist *out = newlist(rt, l->n);
		out->n = 0;
		for (size_t i = 0; i < l->n;) {
			size_t j = i + 1;
			while (j < l->n && equals(rt, it[j].key, it[i].key))
				j++;
			struct vlist *members = newlist(rt, j - i);
			for (size_t k = i; k < j; k++)
				members->items[k - i] = it[k].val;
			struct jval grouper = it[i].key;
			if (!cs) {
				grouper = attr_path(rt, it[i].val, attr, at);
				if (dflt.kind != V_NONE && grouper.kind == V_UNDEF)
					grouper = dflt;
			}
			struct vlist *g = newlist(rt, 2);
			g->tuple = true;
			g->view = VIEW_GROUP;
			g->items[0] = grouper;
			g->items[1] = mklist(members);
			out->items[out->n++] = mklist(g);
			i = j;
		}
		return mklist(out);
	}
	case F_TRUNCATE: {
		/* the value itself when short enough (len() of whatever it is) */
		int64_t vlen = length(rt, v, at);
		struct jstr *str = v.kind == V_STR ? v.s : NULL;
		int64_t length = need_int(rt, arg(a, 0, "length", mkint(255)), at);
		bool killwords = truthy(arg(a, 1, "killwords", mkbool(false)));
		struct jstr *end = to_str(rt, arg(a, 2, "end", mkstr(lit(rt, "...", 3))));
		struct jval lw = arg(a, 3, "leeway", nil);
		int64_t leeway = lw.kind == V_NONE ? 5 : need_int(rt, lw, at);
		int64_t len = vlen;
		int64_t elen = (int64_t)ft_utf8_count(end->p, end->len);
		if (length < elen)
			rt_fail(rt, at, "expected length >= %" PRId64 ", got %" PRId64, elen, length);
		if (leeway < 0)
			rt_fail(rt, at, "expected leeway >= 0, got %" PRId64, leeway);
		if (len <= length + leeway)
			return v;
		if (!str)
			rt_fail(rt, at, "'%s' object has no attribute 'rsplit'", type_name(v));
		struct jstr *head = substr(rt, str, 0, ft_utf8_offset(str->p, str->len, (size_t)(length - elen)));
		if (!killwords) {
			/* s[:length - len(end)].rsplit(" ", 1)[0] */
			const char *sp = NULL;
			for (size_t q = head->len; q-- > 0;)
				if (head->p[q] == ' ') {
					sp = head->p + q;
					break;
				}
			if (sp)
				head = substr(rt, head, 0, (size_t)(sp - head->p));
		}
		return concat_str(rt, head, end);
	}
	}
	rt_fail(rt, at, "unknown filter");
}

static bool apply_test(struct rt *rt, int id, struct jval v, struct args *a, const struct node *at)
{
	/* the tests that compare take exactly one argument, positionally for
	 * the operator ones; the others none */
	static const char *const one_arg[T_COUNT_] = {
		[T_DIVISIBLEBY] = "num", [T_IN] = "seq", [T_SAMEAS] = "other",
		[T_EQ] = "", [T_EQUALTO] = "", [T_NE] = "", [T_GE] = "", [T_GREATERTHAN] = "",
		[T_GT] = "", [T_LE] = "", [T_LESSTHAN] = "", [T_LT] = "", [T_EQ2] = "",
		[T_NE2] = "", [T_LT2] = "", [T_LE2] = "", [T_GT2] = "", [T_GE2] = "",
	};
	struct signature sig = { { NULL }, 0, false };
	if (one_arg[id] && *one_arg[id]) {
		sig.params[0] = one_arg[id];
		sig.required = 1;
	} else if (one_arg[id]) {
		if (a->nkw)
			rt_fail(rt, at, "%s() takes no keyword arguments", test_names[id]);
		sig.params[0] = "b";
		sig.required = 1;
	}
	check_call(rt, test_names[id], &sig, a, at);
	struct jval x = a->npos ? a->pos[0] : a->nkw ? a->kwv[0] : undef(NULL);
	switch (id) {
	case T_BOOLEAN: return v.kind == V_BOOL;
	case T_CALLABLE:  /* jinja2's Undefined has __call__ */
		return v.kind == V_MACRO || v.kind == V_FUNC || v.kind == V_METHOD || v.kind == V_UNDEF;
	case T_DEFINED: return v.kind != V_UNDEF;
	case T_UNDEFINED: return v.kind == V_UNDEF;
	case T_DIVISIBLEBY:  /* value % num == 0 */
		return equals(rt, arith(rt, OP_MOD, v, x, at), mkint(0));
	case T_EQ: case T_EQUALTO: case T_EQ2: return equals(rt, v, x);
	case T_NE: case T_NE2: return !equals(rt, v, x);
	case T_EVEN: return equals(rt, arith(rt, OP_MOD, v, mkint(2), at), mkint(0));
	case T_ODD: return equals(rt, arith(rt, OP_MOD, v, mkint(2), at), mkint(1));
	case T_FALSE: return v.kind == V_BOOL && !v.b;
	case T_TRUE: return v.kind == V_BOOL && v.b;
	case T_FLOAT: return v.kind == V_FLOAT;
	case T_INTEGER: return v.kind == V_INT || v.kind == V_BIGINT;
	case T_NUMBER: return is_num(v);
	case T_GE: case T_GE2: return compare(rt, v, x, at) >= 0;
	case T_GT: case T_GREATERTHAN: case T_GT2: return compare(rt, v, x, at) > 0;
	case T_LE: case T_LE2: return compare(rt, v, x, at) <= 0;
	case T_LT: case T_LESSTHAN: case T_LT2: return compare(rt, v, x, at) < 0;
	case T_IN: return contains(rt, x, v, at);
	case T_ITERABLE:
		return v.kind == V_STR || v.kind == V_LIST || v.kind == V_DICT || v.kind == V_JSON ||
		       v.kind == V_UNDEF;
	case T_SEQUENCE:  /* len() and __getitem__: Undefined has both */
		return v.kind == V_STR || (v.kind == V_LIST && !is_gen(v)) || v.kind == V_DICT ||
		       v.kind == V_JSON || v.kind == V_UNDEF;
	case T_MAPPING: return is_map(v);
	case T_NONE: return v.kind == V_NONE;
	case T_STRING: return v.kind == V_STR;
	case T_LOWER:  /* str(value).islower() */
		return char_class(rt, to_str(rt, v), M_ISLOWER).b;
	case T_UPPER:
		return char_class(rt, to_str(rt, v), M_ISUPPER).b;
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

/* Python's printf-style formatting (str % args, jinja2's format filter):
 * %(key)? flags width .precision conversion, for s r d i u x X o e E f F
 * g G c %. */
static void pad_put(struct rt *rt, struct ft_render *r, const struct jstr *s, int64_t width,
		    bool left)
{
	int64_t n = (int64_t)ft_utf8_count(s->p, s->len);
	if (!left)
		for (int64_t k = n; k < width; k++)
			put_lit(rt, r, " ", 1);
	put(rt, r, s, 0);
	if (left)
		for (int64_t k = n; k < width; k++)
			put_lit(rt, r, " ", 1);
}

static NOINLINE struct jval percent_format(struct rt *rt, struct jstr *fmt, struct jval args,
				  const struct node *at)
{
	struct vlist *l;
	bool mapping = is_map(args);
	/* Python: an argument with __getitem__ that is not a tuple or str (a
	 * dict, but a list too) may go unused without complaint */
	bool maplike = mapping || is_json_arr(args) || (args.kind == V_LIST && !args.l->tuple);
	if (args.kind == V_LIST && args.l->tuple) {
		l = args.l;
	} else {
		l = newlist(rt, 1);
		l->items[0] = args;
	}
	size_t ai = 0;
	bool used_key = false;
	struct sb *b = sb_new(rt);
	size_t i = 0, run = 0;
	while (i < fmt->len) {
		if (fmt->p[i] != '%') {
			i++;
			continue;
		}
		put(rt, &b->r, substr(rt, fmt, run, i - run), 0);
		i++;
		struct jval x = none();
		bool have_x = false;
		if (i < fmt->len && fmt->p[i] == '(') {
			/* %(key)s: the argument is a mapping */
			size_t k = ++i;
			int depth = 1;
			while (i < fmt->len && depth) {
				depth += fmt->p[i] == '(' ? 1 : fmt->p[i] == ')' ? -1 : 0;
				i++;
			}
			if (depth)
				rt_fail(rt, at, "incomplete format key");
			if (!mapping)
				rt_fail(rt, at, "format requires a mapping");
			bool found;
			struct jval key = mkstr(lit(rt, fmt->p + k, i - 1 - k));
			x = getitem_value(rt, args, key, &found);
			if (!found)
				rt_fail(rt, at, "'%.*s'", (int)(i - 1 - k), fmt->p + k);
			have_x = used_key = true;
		}
		bool left = false, zero = false, alt = false;
		char sign = 0;
		for (; i < fmt->len && strchr("-+ #0", fmt->p[i]); i++) {
			switch (fmt->p[i]) {
			case '-': left = true; break;
			case '0': zero = true; break;
			case '#': alt = true; break;
			case '+': sign = '+'; break;
			default: if (!sign) sign = ' ';
			}
		}
		int64_t width = -1, prec = -1;
		for (int part = 0; part < 2; part++) {
			int64_t *dst = part ? &prec : &width;
			if (part) {
				if (i >= fmt->len || fmt->p[i] != '.')
					break;
				i++;
				prec = 0;
			}
			if (i < fmt->len && fmt->p[i] == '*') {
				i++;
				if (ai >= l->n || mapping)
					rt_fail(rt, at, "not enough arguments for format string");
				struct jval w = l->items[ai++];
				if (w.kind != V_INT && w.kind != V_BOOL)
					rt_fail(rt, at, "* wants int");
				*dst = inum(w);
				if (!part && *dst < 0) {
					left = true;
					*dst = -*dst;
				}
			} else {
				for (; i < fmt->len && fmt->p[i] >= '0' && fmt->p[i] <= '9'; i++) {
					*dst = (*dst < 0 ? 0 : *dst) * 10 + (fmt->p[i] - '0');
					if (*dst > 10000)
						rt_fail(rt, at, "width or precision too big");
				}
			}
		}
		while (i < fmt->len && strchr("hlL", fmt->p[i]))
			i++;
		if (i >= fmt->len)
			rt_fail(rt, at, "incomplete format");
		char conv = fmt->p[i++];
		run = i;
		if (conv == '%') {
			put_lit(rt, &b->r, "%", 1);
			continue;
		}
		if (!strchr("srdiuxXoeEfFgGca", conv))
			rt_fail(rt, at, "unsupported format character '%c' (0x%x) at index %zu",
				(unsigned char)conv < 0x80 ? conv : '?', (unsigned char)conv,
				ft_utf8_count(fmt->p, i - 1));
		if (!have_x) {
			if (mapping && !used_key) {
				x = args;
			} else {
				if (ai >= l->n)
					rt_fail(rt, at, "not enough arguments for format string");
				x = l->items[ai++];
			}
		}
		char tmp[600];
		int n = 0;
		switch (conv) {
		case 's': case 'r': case 'a': {
			struct jstr *str;
			if (conv == 's') {
				str = to_str(rt, x);
			} else {
				struct sb *rb = sb_new(rt);
				repr_into(rt, &rb->r, x, 0);
				str = sb_done(rt, rb);
			}
			if (prec >= 0 && (size_t)prec < str->len)
				str = substr(rt, str, 0, ft_utf8_offset(str->p, str->len, (size_t)prec));
			pad_put(rt, &b->r, str, width, left);
			continue;
		}
		case 'c': {
			char enc[4];
			int k;
			if (x.kind == V_STR && ft_utf8_count(x.s->p, x.s->len) == 1) {
				pad_put(rt, &b->r, x.s, width, left);
				continue;
			}
			if (x.kind != V_INT && x.kind != V_BOOL)
				rt_fail(rt, at, "%%c requires int or char");
			if (inum(x) < 0 || inum(x) > 0x10FFFF || (inum(x) >= 0xD800 && inum(x) <= 0xDFFF))
				rt_fail(rt, at, "%%c arg not in range(0x110000)");
			k = ft_utf8_encode((int32_t)inum(x), enc);
			pad_put(rt, &b->r, lit_copy(rt, enc, (size_t)k), width, left);
			continue;
		}
		case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
			bool intconv = conv == 'x' || conv == 'X' || conv == 'o';
			if (x.kind == V_UNDEF)
				undef_fail(rt, at, x);
			if (x.kind == V_BIGINT)
				rt_fail(rt, at, "integer beyond 64 bits: not supported");
			if (!is_num(x) || (intconv && x.kind == V_FLOAT))
				rt_fail(rt, at, "%%%c format: %s is required, not %s", conv,
					intconv ? "an integer" : "a real number", type_name(x));
			if (x.kind == V_FLOAT && !isfinite(x.f))
				rt_fail(rt, at, "cannot convert float %s to integer", isnan(x.f) ? "NaN" : "infinity");
			if (x.kind == V_FLOAT && (x.f >= 9223372036854775808.0 || x.f < -9223372036854775808.0))
				rt_fail(rt, at, "integer beyond 64 bits: not supported");
			int64_t v = inum(x);
			uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
			char digits[80];
			int nd = snprintf(digits, sizeof digits, conv == 'o' ? "%" PRIo64 : conv == 'x' ?
					  "%" PRIx64 : conv == 'X' ? "%" PRIX64 : "%" PRIu64, mag);
			char head[8];
			int nh = 0;
			if (v < 0)
				head[nh++] = '-';
			else if (sign)
				head[nh++] = sign;
			if (alt && intconv) {
				head[nh++] = '0';
				head[nh++] = conv == 'o' ? 'o' : conv;
			}
			int64_t body = nd > prec ? nd : prec;  /* precision: minimum digits */
			int64_t fill = width > nh + body ? width - nh - body : 0;
			if (fill > (int64_t)sizeof tmp - 200 || prec > (int64_t)sizeof tmp - 200)
				rt_fail(rt, at, "width or precision too big");
			if (!left && !zero)
				for (; fill > 0; fill--)
					tmp[n++] = ' ';
			memcpy(tmp + n, head, (size_t)nh);
			n += nh;
			if (!left && zero)
				for (; fill > 0; fill--)
					tmp[n++] = '0';
			for (int64_t k = nd; k < prec; k++)
				tmp[n++] = '0';
			memcpy(tmp + n, digits, (size_t)nd);
			n += nd;
			for (; fill > 0; fill--)
				tmp[n++] = ' ';
			break;
		}
		default: {  /* e E f F g G */
			if (x.kind == V_UNDEF)
				undef_fail(rt, at, x);
			if (!is_num(x))
				rt_fail(rt, at, "must be real number, not %s", type_name(x));
			if (prec > 300 || width > 300)
				rt_fail(rt, at, "width or precision too big");
			char spec[32];
			int k = 0;
			spec[k++] = '%';
			if (left)
				spec[k++] = '-';
			if (zero)
				spec[k++] = '0';
			if (alt)
				spec[k++] = '#';
			if (sign)
				spec[k++] = sign;
			k += snprintf(spec + k, sizeof spec - (size_t)k, "%s", "*.*");
			spec[k++] = conv;
			spec[k] = 0;
			n = snprintf(tmp, sizeof tmp, spec, (int)(width < 0 ? 0 : width),
				     (int)(prec < 0 ? 6 : prec), num(x));
			if (n < 0 || (size_t)n >= sizeof tmp)
				rt_fail(rt, at, "number too long to format");
		}
		}
		put(rt, &b->r, lit_copy(rt, tmp, (size_t)n), 0);
	}
	put(rt, &b->r, substr(rt, fmt, run, fmt->len - run), 0);
	if (ai < l->n && !maplike)
		rt_fail(rt, at, "not all arguments converted during string formatting");
	return mkstr(sb_done(rt, b));
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
	/* scratch buffers an error left behind */
	for (int i = rt->ntmp - 1; i >= 0; i--) {
		if (rt->tmp[i].is_buf)
			ft_buf_release(rt->tmp[i].p);
		else
			ft_render_release(rt->tmp[i].p);
	}
	free(rt);
	return rc;
}
