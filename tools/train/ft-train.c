/* ft-train: the trainer's command line. Subcommands:
 *   init   write a randomly initialised Hugging Face model directory
 *          (config.json + model.safetensors) from a config.json or a preset;
 *   train  run a recipe (tools/train/train.c).
 * Each subcommand is one function taking its own argv. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "model.h"
#include "out.h"
#include "recipe.h"
#include "train.h"

static const char usage_text[] =
"Usage: ft-train COMMAND [OPTION]...\n"
"Train Llama-family models (Llama, Mistral, Qwen2) on ft shards.\n"
"\n"
"Commands:\n"
"  init      write a randomly initialised model directory\n"
"  train     fine-tune a model on shards (full or LoRA)\n"
"\n"
"Run 'ft-train COMMAND --help' for a command's options.\n"
"  -h, --help     show this help and exit\n"
"      --version  show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

static const char init_usage[] =
"Usage: ft-train init (--config FILE | --preset NAME) -o DIR [OPTION]...\n"
"Write DIR/config.json and DIR/model.safetensors: a model with Hugging Face's\n"
"initialisation (matrices normal(0, initializer_range), biases 0, norms 1).\n"
"\n"
"  -c, --config=FILE     a config.json (LlamaForCausalLM, MistralForCausalLM,\n"
"                        Qwen2ForCausalLM), copied to DIR as it is\n"
"  -p, --preset=NAME     tiny (2 layers, hidden 128) or small (8 layers,\n"
"                        hidden 512), Llama with grouped-query attention\n"
"      --vocab-size=N    vocabulary size for a preset (default 32000)\n"
"  -o, --output=DIR      the model directory (created if missing)\n"
"  -s, --seed=N          random seed (default 0)\n"
"      --dtype=TYPE      f32, bf16 or f16 weights (default f32)\n"
"  -f, --force           replace an existing model in DIR\n"
"  -h, --help            show this help and exit\n";

enum { OPT_VERSION = 256, OPT_VOCAB, OPT_DTYPE };

static bool exists(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "preset", required_argument, NULL, 'p' },
		{ "vocab-size", required_argument, NULL, OPT_VOCAB },
		{ "output", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *preset = NULL, *outdir = NULL;
	long vocab = 0, seed = 0;
	bool force = false;
	enum ft_dtype dtype = FT_DT_F32;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:p:o:s:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'p': preset = optarg; break;
		case OPT_VOCAB: vocab = ft_opt_long("--vocab-size", optarg, 1, 1 << 24); break;
		case 'o': outdir = optarg; break;
		case 's': seed = ft_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL); break;
		case 'f': force = true; break;
		case OPT_DTYPE:
			if (strcmp(optarg, "f32") == 0 || strcmp(optarg, "fp32") == 0)
				dtype = FT_DT_F32;
			else if (strcmp(optarg, "bf16") == 0)
				dtype = FT_DT_BF16;
			else if (strcmp(optarg, "f16") == 0 || strcmp(optarg, "fp16") == 0)
				dtype = FT_DT_F16;
			else
				ft_usage_error("invalid --dtype '%s' (f32, bf16, f16)", optarg);
			break;
		case 'h':
			fputs(init_usage, stdout);
			ft_close_stdout();
			return FT_EXIT_OK;
		default:
			ft_usage_error("init: bad option");
		}
	}
	if (optind < argc)
		ft_usage_error("init: unexpected argument '%s'", argv[optind]);
	if (!config == !preset)
		ft_usage_error("init: give exactly one of --config and --preset");
	if (!outdir)
		ft_usage_error("init: missing -o DIR");
	if (vocab && !preset)
		ft_usage_error("init: --vocab-size goes with --preset");

	struct ft_err err = { 0 };
	struct ft_model_config cfg;
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	if (config) {
		/* read once: parsed here, copied as it is into the model directory */
		if (ft_buf_read_file(&text, config, &err))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
		if (ft_model_config_parse(&cfg, text.data ? text.data : "", text.len, &err))
			ft_die(FT_EXIT_DATA, "'%s': %s", config, err.msg);
	} else {
		if (ft_model_config_preset(&cfg, preset, &err))
			ft_usage_error("%s", err.msg);
		if (vocab)
			cfg.vocab_size = (int)vocab;
		if (ft_model_config_write(&cfg, &text))
			ft_die(FT_EXIT_DATA, "out of memory");
	}
	if (cfg.warning[0])
		ft_warn("warning: %s", cfg.warning);

	if (mkdir(outdir, 0777) != 0 && errno != EEXIST)
		ft_die(FT_EXIT_DATA, "cannot create '%s': %s", outdir, strerror(errno));
	if (!force && (exists(outdir, "config.json") || exists(outdir, "model.safetensors") ||
		       exists(outdir, "model.safetensors.index.json")))
		ft_die(FT_EXIT_DATA, "'%s' already holds a model (--force replaces it)", outdir);

	struct ft_model model;
	if (ft_model_init(&model, &cfg, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_model_init_random(&model, (uint64_t)seed);

	char path[4096];
	if (snprintf(path, sizeof path, "%s/model.safetensors", outdir) >= (int)sizeof path)
		ft_die(FT_EXIT_USAGE, "output path too long");
	if (ft_model_save_weights(&model, path, dtype, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	snprintf(path, sizeof path, "%s/config.json", outdir);
	struct ft_out *o;
	if (ft_out_open(&o, path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_out_write(o, text.data, text.len);
	if (ft_out_commit(o, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_buf_release(&text);
	fprintf(stderr, "ft-train: %s: %zu parameters\n", outdir, model.nfloats);
	ft_model_release(&model);
	return FT_EXIT_OK;
}

static void train_usage(void)
{
	fputs("Usage: ft-train train [-r RECIPE] [--KEY=VALUE]... [--resume[=DIR]]\n"
	      "Fine-tune a Hugging Face Llama-family model on shards from ft-tokenize.\n"
	      "Every recipe key is also an option; options override the recipe file.\n"
	      "\n"
	      "  -r, --recipe=FILE     a recipe (key = value lines; see recipes/)\n"
	      "  -m, --model=DIR       same as --model (the base model)\n"
	      "  -o, --output=DIR      same as --output (the run directory)\n"
	      "      --resume[=DIR]    continue from DIR, or from the newest checkpoint\n"
	      "                        in OUTPUT/checkpoints\n"
	      "      --dry-run         print the resolved recipe and exit\n"
	      "  -h, --help            show this help and exit\n"
	      "\nKeys (default):\n", stdout);
	struct ft_recipe r;
	ft_recipe_init(&r);
	for (size_t i = 0; i < ft_recipe_nkeys; i++) {
		const struct ft_recipe_key *k = &ft_recipe_keys[i];
		struct ft_buf v;
		ft_buf_init(&v, 1 << 16);
		if (k->def)
			ft_recipe_format(&r, k, &v);
		printf("  %-18s %s%s%s%s\n", k->name, k->help, k->def ? " (" : " (required)",
		       k->def ? (v.data ? v.data : "") : "", k->def ? ")" : "");
		ft_buf_release(&v);
	}
	ft_recipe_release(&r);
	ft_close_stdout();
}

/* Options are read in two passes: the recipe file first, then every
 * --KEY=VALUE over it, whatever their order on the line. */
static int cmd_train(int argc, char **argv)
{
	static struct ft_recipe r;   /* static: still reachable when a usage error exits */
	struct ft_err err = { 0 };
	ft_recipe_init(&r);
	const char *resume = NULL, *recipe = NULL;
	bool dry_run = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			ft_recipe_release(&r);
			train_usage();
			return FT_EXIT_OK;
		}
		if (strcmp(a, "-r") == 0 || strcmp(a, "--recipe") == 0) {
			if (++i == argc)
				ft_usage_error("train: %s needs a file", a);
			recipe = argv[i];
		} else if (strncmp(a, "--recipe=", 9) == 0) {
			recipe = a + 9;
		}
	}
	if (recipe && ft_recipe_load(&r, recipe, &err)) {
		ft_report(&err, NULL);
		ft_recipe_release(&r);
		return FT_EXIT_DATA;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-r") == 0 || strcmp(a, "--recipe") == 0) {
			i++;
			continue;
		}
		if (strncmp(a, "--recipe=", 9) == 0)
			continue;
		if (strcmp(a, "--resume") == 0) {
			resume = "";
			continue;
		}
		if (strcmp(a, "--dry-run") == 0) {
			dry_run = true;
			continue;
		}
		if (strncmp(a, "--resume=", 9) == 0) {
			resume = a + 9;
			continue;
		}
		const char *name, *value = NULL;
		size_t len;
		if (strcmp(a, "-m") == 0 || strcmp(a, "-o") == 0) {
			name = a[1] == 'm' ? "model" : "output";
			len = strlen(name);
		} else if (strncmp(a, "--", 2) == 0 && a[2]) {
			name = a + 2;
			const char *eq = strchr(name, '=');
			len = eq ? (size_t)(eq - name) : strlen(name);
			if (eq)
				value = eq + 1;
		} else {
			ft_usage_error("train: unexpected argument '%s'", a);
		}
		const struct ft_recipe_key *k = ft_recipe_key(name, len);
		if (!k)
			ft_usage_error("train: unknown option '%s'", a);
		if (!value) {
			/* a bare boolean is true; everything else takes the next word */
			if (k->type == FT_RK_BOOL && (i + 1 == argc || (strcmp(argv[i + 1], "true") &&
								       strcmp(argv[i + 1], "false"))))
				value = "true";
			else if (++i == argc)
				ft_usage_error("train: %s needs a value", a);
			else
				value = argv[i];
		}
		if (ft_recipe_set(&r, k, value, &err))
			ft_usage_error("train: %s", err.msg);
	}
	if (dry_run) {
		struct ft_buf text;
		ft_buf_init(&text, 1 << 20);
		if (ft_recipe_check(&r, &err))
			ft_usage_error("%s", err.msg);
		if (ft_recipe_write(&r, &text))
			ft_die(FT_EXIT_DATA, "out of memory");
		fputs(text.data, stdout);
		ft_buf_release(&text);
		ft_recipe_release(&r);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	int rc = ft_train_run(&r, resume);
	ft_recipe_release(&r);
	return rc;
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-train");
	if (argc < 2)
		ft_usage_error("missing command");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage_text, stdout);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("ft-train %s\n", FT_VERSION);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(cmd, "train") == 0)
		return cmd_train(argc - 1, argv + 1);
	ft_usage_error("unknown command '%s'", cmd);
}
