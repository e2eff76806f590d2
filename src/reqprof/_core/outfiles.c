/* outfiles.c - see outfiles.h. */
#include "outfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
push(rp_dir_list *l, const char *name, const struct stat *st)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        rp_dir_entry *items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL) {
            return ENOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    size_t len = strlen(name);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return ENOMEM;
    }
    memcpy(copy, name, len + 1);
    rp_dir_entry *e = &l->items[l->n++];
    e->name = copy;
    e->size = (uint64_t)st->st_size;
#if defined(__APPLE__)
    e->mtime = (double)st->st_mtimespec.tv_sec + st->st_mtimespec.tv_nsec / 1e9;
#else
    e->mtime = (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9;
#endif
    return 0;
}

int
rp_dir_scan(const char *path, const char *prefix, size_t max_entries,
            rp_dir_list *out)
{
    memset(out, 0, sizeof(*out));
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return errno ? errno : EIO;
    }
    int dfd = dirfd(dir);
    size_t plen = strlen(prefix);
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(dir);
        if (d == NULL) {
            rc = errno;
            break;
        }
        if (strncmp(d->d_name, prefix, plen) != 0) {
            continue;
        }
        struct stat st;
        if (fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                continue;   /* removed meanwhile */
            }
            rc = errno;
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;
        }
        if (out->n >= max_entries) {
            break;
        }
        rc = push(out, d->d_name, &st);
        if (rc != 0) {
            break;
        }
    }
    closedir(dir);
    if (rc != 0) {
        rp_dir_list_free(out);
    }
    return rc;
}

void
rp_dir_list_free(rp_dir_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int
write_all(const rp_out_file *f)
{
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        return errno;
    }
    size_t done = 0;
    int rc = 0;
    while (done < f->len) {
        ssize_t n = write(fd, f->data + done, f->len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = errno;
            break;
        }
        done += (size_t)n;
    }
    if (close(fd) != 0 && rc == 0 && errno != EINTR) {
        rc = errno;     /* (a delayed write error: NFS, a full disk) */
    }
    return rc;
}

int
rp_put_files(const char *const *remove, size_t n_remove,
             const rp_out_file *files, size_t n_files)
{
    for (size_t i = 0; i < n_remove; i++) {
        if (unlink(remove[i]) != 0 && errno != ENOENT) {
            return errno;
        }
    }
    size_t written = 0, placed = 0;
    int rc = 0;
    for (; written < n_files; written++) {
        rc = write_all(&files[written]);
        if (rc != 0) {
            unlink(files[written].tmp);
            goto error;
        }
    }
    for (; placed < n_files; placed++) {
        if (rename(files[placed].tmp, files[placed].path) != 0) {
            rc = errno;
            goto error;
        }
    }
    return 0;
error:
    for (size_t i = 0; i < written; i++) {
        unlink(i < placed ? files[i].path : files[i].tmp);
    }
    return rc;
}
