/* jinja_impl.h: internals shared by the template parser and evaluator.
 * Everything a compiled template holds lives in its arena and dies with it;
 * everything a render makes lives in the render's arena. */
#ifndef FT_JINJA_IMPL_H
#define FT_JINJA_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "jinja.h"


/* ---- strings with provenance ---- */
struct jspan {
	uint32_t off, len;
	const void *origin;
	unsigned flags;      /* FT_SPAN_* */
};
struct jstr {
	const char *p;
	size_t len;
	struct jspan *spans;  /* sorted; NULL = all template text */
	uint32_t nspans;
};

/* ---- values ---- */
enum vkind {
	V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR,
	V_LIST,    /* struct vlist (also tuples: vlist.tuple) */
	V_DICT,    /* struct vdict, insertion ordered */
	V_JSON,    /* borrowed cJSON array or object */
	V_NS,      /* namespace(): a mutable vdict */
	V_MACRO, V_FUNC, V_METHOD, V_LOOP,
};

struct jval {
	uint8_t kind;
	union {
		bool b;
		int64_t i;
		double f;
		struct jstr *s;
		struct vlist *l;
		struct vdict *d;
		const cJSON *j;
		struct node *macro;
		int func;            /* builtin global id */
		struct vmethod *m;
		struct loopinfo *loop;
		const char *undef_name;  /* V_UNDEF: name for messages (may be NULL) */
	};
};

struct vlist {
	size_t n;
	struct jval *items;
	bool tuple;
};
struct vkv {
	struct jval key, val;
};
struct vdict {
	size_t n, cap;
	struct vkv *items;
};
struct vmethod {
	struct jval self;
	int id;
};
struct loopinfo {
	int64_t index0, length;
	struct jval prev, next;
	bool has_prev, has_next;
	int depth;
};

/* ---- AST ---- */
enum nkind {
	/* statements */
	N_BODY, N_DATA, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO,
	N_GENERATION, N_BREAK, N_CONTINUE, N_FILTERBLOCK,
	/* expressions */
	E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
	E_BINOP, E_NEG, E_POS, E_NOT, E_AND, E_OR, E_COMPARE, E_COND,
	E_LIST, E_TUPLE, E_DICT,
};

enum binop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT };
enum cmpop { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

struct node {
	uint8_t kind;
	uint8_t op;        /* binop / cmpop / negation for tests */
	bool flag;         /* N_FOR: has filter; E_TEST: negated; N_SET: namespace target */
	int line, col;
	const char *name;  /* E_NAME, E_ATTR, E_FILTER/E_TEST name, N_SET target, N_MACRO name */
	size_t namelen;
	int id;            /* builtin filter/test id */
	struct node *a, *b, *c, *d;  /* children (meaning per kind) */
	struct node **list;          /* body statements, args, items, compare operands */
	int n;
	struct node **kwvals;        /* keyword arguments / macro defaults */
	const char **kwnames;
	int nkw;
	const char **names;          /* N_FOR / N_SET tuple targets, N_MACRO params */
	int nnames;
	struct jval cval;            /* E_CONST */
	struct jstr text;            /* N_DATA */
};

struct ft_tpl {
	struct ft_arena arena;
	struct node *root;
	const char *name;
	bool has_generation;
	const char **used_names;  /* every E_NAME read, for ft_tpl_uses */
	int nused, capused;
};

/* builtins (names resolved at compile time) */
int jinja_filter_id(const char *name, size_t len);  /* -1 if unknown */
int jinja_test_id(const char *name, size_t len);

#endif
