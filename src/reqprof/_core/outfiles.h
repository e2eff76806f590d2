/* outfiles.h - the output directory's file operations, each done in one go.
 *
 * Pure C (no Python): the caller lets the GIL go once for a whole listing
 * or a whole report's files, instead of once per entry and per system call
 * as os.scandir(), os.stat(), open() and os.replace() do (each time the GIL
 * is let go, taking it back beside a busy thread costs up to the
 * interpreter's switch interval).
 */
#ifndef RP_OUTFILES_H
#define RP_OUTFILES_H

#include <stddef.h>
#include <stdint.h>

typedef struct rp_dir_entry {
    char *name;
    uint64_t size;      /* bytes */
    double mtime;       /* Unix time */
} rp_dir_entry;

typedef struct rp_dir_list {
    rp_dir_entry *items;
    size_t n, cap;
} rp_dir_list;

/* Lists the regular files of `path` whose names start with `prefix`, with
 * their sizes and modification times (a file removed meanwhile is left
 * out). Returns 0, or an errno value (the list is then empty). At most
 * `max_entries` are listed. Free with rp_dir_list_free(). */
int rp_dir_scan(const char *path, const char *prefix, size_t max_entries,
                rp_dir_list *out);
void rp_dir_list_free(rp_dir_list *l);

typedef struct rp_out_file {
    const char *tmp;        /* written first (created: must not exist) */
    const char *path;       /* then renamed to this */
    const char *data;
    size_t len;
} rp_out_file;

/* Removes the files `remove` (a missing one is no error), then writes every
 * file of `files` to its temporary name and, once all are complete,
 * renames them into place in order. On failure nothing of `files` is left
 * (temporary or placed) and the errno value is returned; 0 on success. */
int rp_put_files(const char *const *remove, size_t n_remove,
                 const rp_out_file *files, size_t n_files);

#endif
