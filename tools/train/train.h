/* train.h: `ft-train train`, one training run from a resolved recipe
 * (tools/train/train.c). Prints progress on stderr; dies with a message on
 * any error (exit 1); returns 0, or 130 when interrupted by SIGINT/SIGTERM
 * after writing a checkpoint. resume: NULL (a fresh run), "" or "latest"
 * (the newest checkpoint in OUTPUT/checkpoints) or a checkpoint directory. */
#ifndef FT_TRAIN_H
#define FT_TRAIN_H

#include "recipe.h"

int ft_train_run(const struct ft_recipe *r, const char *resume);

#endif
