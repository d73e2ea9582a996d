/* dirs.h: directories written atomically. A directory is built under a
 * hidden temporary name next to where it belongs (".NAME.tmp-XXXXXX"),
 * its files fsynced, then renamed into place and the parent fsynced, so
 * a crash leaves either the old directory or the complete new one, never
 * a partial one under the real name. Errors: 0 or FT_E_IO with err set. */
#ifndef FT_DIRS_H
#define FT_DIRS_H

#include <stddef.h>

#include "ft.h"

/* mkdir -p path (mode 0777 before umask). */
int ft_dir_make(const char *path, struct ft_err *err);
/* Create a temporary directory for final path; its name goes to tmp. */
int ft_dir_tmp(const char *final, char *tmp, size_t tmpsize, struct ft_err *err);
/* fsync tmp, rename it to final (an existing final is replaced: moved
 * aside, then removed), fsync the parent. */
int ft_dir_commit(const char *tmp, const char *final, struct ft_err *err);
/* rm -r path (no error when it does not exist). */
int ft_dir_remove(const char *path, struct ft_err *err);
/* fsync a directory (or file) by path. */
int ft_fsync_path(const char *path, struct ft_err *err);

#endif
