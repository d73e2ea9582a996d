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
	V_BIGINT,  /* an integer literal from JSON beyond int64: its digits (j->valuestring) */
};

/* For V_UNDEF, what jinja2's Undefined says when it is used: "'name' is
 * undefined" (U_NAME), "'<type> object' has no attribute 'name'" (a type
 * code from jinja_eval.c), "<type> object has no element name" (the code
 * with U_ELEMENT), or undef_name itself (U_HINT). */
enum { U_NAME = 0, U_HINT = 0x40, U_ELEMENT = 0x80 };

struct jval {
	uint8_t kind;
	uint8_t uobj;          /* V_UNDEF: see above */
	union {
		bool b;
		int64_t i;
		double f;
		struct jstr *s;
		struct vlist *l;
		struct vdict *d;
		const cJSON *j;      /* V_JSON, V_BIGINT */
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
	uint8_t view;   /* VIEW_*: a dict view (str() and operations differ), a
			 * groupby result (a tuple with .grouper and .list), or
			 * what jinja2 gives as a generator (always true, no len(),
			 * iterated once: pos items are consumed) */
	size_t pos;
};
enum { VIEW_NONE, VIEW_ITEMS, VIEW_KEYS, VIEW_VALUES, VIEW_GROUP, VIEW_GEN };
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
	struct jval last_changed;  /* loop.changed(): the arguments of the last call */
	bool has_prev, has_next, has_changed;
	int depth;
};

/* ---- AST ---- */
enum nkind {
	/* statements */
	N_BODY, N_DATA, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO,
	N_GENERATION, N_BREAK, N_CONTINUE, N_FILTERBLOCK, N_WITH,
	/* expressions */
	E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
	E_BINOP, E_CONCAT, E_NEG, E_POS, E_NOT, E_AND, E_OR, E_COMPARE, E_COND,
	E_LIST, E_TUPLE, E_DICT,
};

/* a macro whose body reads varargs / kwargs takes extra arguments there */
enum { MACRO_VARARGS = 1, MACRO_KWARGS = 2 };

enum binop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT };
enum cmpop { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

struct node {
	uint8_t kind;
	uint8_t op;        /* binop / cmpop; N_MACRO: MACRO_VARARGS | MACRO_KWARGS */
	bool flag;         /* N_FOR: has filter; E_TEST: negated; N_SET: namespace target */
	int line, col;
	const char *name;  /* E_NAME, E_ATTR, E_FILTER/E_TEST name, N_SET target, N_MACRO name */
	size_t namelen;
	int id;            /* builtin filter/test id */
	struct node *a, *b, *c, *d;  /* children (meaning per kind) */
	struct node **list;          /* body statements, args, items, compare and concat operands */
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
