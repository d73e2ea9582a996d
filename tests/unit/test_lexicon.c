/* test_lexicon.c: offline paraphrase by phrase substitution (lib/lexicon.c). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexicon.h"
#include "testhelp.h"

static const char lexicon[] =
	"# facilities, said colloquially\n"
	"国际长途电话\t能打国际长途\t可以打国际长途\n"
	"\n"
	"酒店\t宾馆\r\n"
	"有\t带\n";

static void test_parse(void)
{
	struct ft_lexicon *lx;
	struct ft_err err = { 0 };
	test_cond("parse", ft_lexicon_parse(&lx, lexicon, sizeof lexicon - 1, "l.tsv", &err) == 0);
	test_cond("7 phrases", ft_lexicon_phrases(lx) == 7);
	ft_lexicon_free(lx);
	static const struct {
		const char *text;
		long line;
		const char *msg;
	} bad[] = {
		{ "a\tb\nlonely\n", 2, "at least two" },
		{ "a\t\tb\n", 1, "empty phrase" },
		{ "a\tb\t\n", 1, "empty phrase" },
		{ "\ta\tb\n", 1, "empty phrase" },
		{ "a\t\xff\n", 1, "UTF-8" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err = (struct ft_err){ 0 };
		int rc = ft_lexicon_parse(&lx, bad[i].text, strlen(bad[i].text), "l.tsv", &err);
		test_cond(bad[i].msg, rc == FT_E_DATA && err.line == bad[i].line &&
					      strstr(err.msg, bad[i].msg) && err.file &&
					      strcmp(err.file, "l.tsv") == 0);
	}
}

static void test_paraphrase(void)
{
	struct ft_lexicon *lx;
	struct ft_err err = { 0 };
	ft_lexicon_parse(&lx, lexicon, sizeof lexicon - 1, "l.tsv", &err);
	const char *in = "找一家有国际长途电话的酒店";
	struct ft_buf a, b;
	ft_buf_init(&a, 1 << 20);
	ft_buf_init(&b, 1 << 20);
	long n = -1;
	test_cond("p = 1", ft_lexicon_paraphrase(lx, in, strlen(in), 7, 1.0, &a, &n) == 0);
	test_cond("every phrase replaced (3), by another of its group",
		  n == 3 && strncmp(a.data, "找一家带", strlen("找一家带")) == 0 &&
			  (strstr(a.data, "能打国际长途") || strstr(a.data, "可以打国际长途")) &&
			  strstr(a.data, "宾馆") && !strstr(a.data, "电话"));
	ft_lexicon_paraphrase(lx, in, strlen(in), 7, 1.0, &b, NULL);
	test_cond("same seed, same text", a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	/* both alternatives of the 3-phrase group show up over seeds */
	bool saw1 = false, saw2 = false;
	for (uint64_t s = 0; s < 64; s++) {
		ft_buf_reset(&b);
		ft_lexicon_paraphrase(lx, in, strlen(in), s, 1.0, &b, NULL);
		saw1 |= strstr(b.data, "能打国际长途") != NULL;
		saw2 |= strstr(b.data, "可以打国际长途") != NULL;
	}
	test_cond("the seed picks among the alternatives", saw1 && saw2);
	ft_buf_reset(&a);
	test_cond("p = 0 copies", ft_lexicon_paraphrase(lx, in, strlen(in), 7, 0.0, &a, &n) == 0 &&
					  n == 0 && strcmp(a.data, in) == 0);
	/* longest match first: 国际长途电话 is one phrase, not a prefix of another */
	ft_buf_reset(&a);
	const char *in2 = "能打国际长途吗";
	ft_lexicon_paraphrase(lx, in2, strlen(in2), 1, 1.0, &a, &n);
	test_cond("reverse direction too", n == 1 && !strstr(a.data, "能打国际长途") &&
						   strstr(a.data, "吗"));
	ft_buf_reset(&a);
	const char *ascii = "no match here";
	ft_lexicon_paraphrase(lx, ascii, strlen(ascii), 1, 1.0, &a, &n);
	test_cond("no match: unchanged", n == 0 && strcmp(a.data, ascii) == 0);
	ft_buf_release(&a);
	ft_buf_release(&b);
	ft_lexicon_free(lx);
}

/* The recipe's lexicon loads, and paraphrases a real user turn. */
static void test_recipe_lexicon(void)
{
	const char *root = getenv("FT_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/examples/crosswoz/lexicon.tsv", root ? root : "../..");
	struct ft_lexicon *lx;
	struct ft_err err = { 0 };
	test_cond("examples/crosswoz/lexicon.tsv loads", ft_lexicon_load(&lx, path, &err) == 0);
	if (err.code) {
		printf("  %s\n", err.msg);
		return;
	}
	const char *turn = "您好！我想入住一家舒适型的酒店，并且酒店能提供国际电话服务和叫醒服务，"
			   "您能推荐一个吗？";
	struct ft_buf out;
	ft_buf_init(&out, 1 << 20);
	long n;
	ft_lexicon_paraphrase(lx, turn, strlen(turn), 3, 1.0, &out, &n);
	test_cond("a real user turn: two facilities said another way",
		  n == 2 && !strstr(out.data, "国际电话服务") && !strstr(out.data, "叫醒服务") &&
			  strstr(out.data, "舒适型的酒店"));
	ft_buf_release(&out);
	ft_lexicon_free(lx);
}

int main(void)
{
	test_recipe_lexicon();
	test_parse();
	test_paraphrase();
	return test_report();
}
