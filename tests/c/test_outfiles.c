/* test_outfiles.c - the output directory's file operations (outfiles.c):
 * listing with sizes, placing files all or nothing, removing. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "outfiles.h"

static char dir[64];

static void
path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void
make_file(const char *name, size_t size)
{
    char path[256];
    path_of(path, sizeof(path), name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f != NULL) {
        for (size_t i = 0; i < size; i++) {
            fputc('x', f);
        }
        fclose(f);
    }
}

static int
exists(const char *name)
{
    char path[256];
    struct stat st;
    path_of(path, sizeof(path), name);
    return stat(path, &st) == 0;
}

static const rp_dir_entry *
find(const rp_dir_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].name, name) == 0) {
            return &l->items[i];
        }
    }
    return NULL;
}

static void
test_scan_lists_prefixed_regular_files_with_sizes(void)
{
    make_file("reqprof-a.json", 10);
    make_file("reqprof-a.html", 2000);
    make_file("other.txt", 5);
    char sub[256];
    path_of(sub, sizeof(sub), "reqprof-dir");
    CHECK(mkdir(sub, 0700) == 0);
    rp_dir_list l;
    CHECK(rp_dir_scan(dir, "reqprof-", 100, &l) == 0);
    CHECK_EQ_U64(l.n, 2);
    const rp_dir_entry *a = find(&l, "reqprof-a.json"), *b = find(&l, "reqprof-a.html");
    CHECK(a != NULL && a->size == 10 && a->mtime > 1e9);
    CHECK(b != NULL && b->size == 2000);
    rp_dir_list_free(&l);
    CHECK(l.n == 0 && l.items == NULL);
    /* At most max_entries. */
    CHECK(rp_dir_scan(dir, "reqprof-", 1, &l) == 0);
    CHECK_EQ_U64(l.n, 1);
    rp_dir_list_free(&l);
    CHECK(rmdir(sub) == 0);
}

static void
test_scan_of_a_missing_directory_is_an_errno(void)
{
    rp_dir_list l;
    CHECK(rp_dir_scan("/nonexistent-reqprof-dir", "", 10, &l) == ENOENT);
    CHECK(l.n == 0 && l.items == NULL);
}

static void
test_put_removes_then_places_every_file(void)
{
    char t1[256], p1[256], t2[256], p2[256], gone[256], missing[256];
    path_of(t1, sizeof(t1), "reqprof-b.json.tmp");
    path_of(p1, sizeof(p1), "reqprof-b.json");
    path_of(t2, sizeof(t2), "reqprof-b.html.tmp");
    path_of(p2, sizeof(p2), "reqprof-b.html");
    path_of(gone, sizeof(gone), "reqprof-a.html");
    path_of(missing, sizeof(missing), "reqprof-never.html");
    const char *remove[] = {gone, missing};
    rp_out_file files[] = {{t1, p1, "{}", 2}, {t2, p2, "<html>", 6}};
    CHECK(rp_put_files(remove, 2, files, 2) == 0);
    CHECK(!exists("reqprof-a.html") && exists("reqprof-a.json"));
    CHECK(exists("reqprof-b.json") && exists("reqprof-b.html"));
    CHECK(!exists("reqprof-b.json.tmp") && !exists("reqprof-b.html.tmp"));
    rp_dir_list l;
    CHECK(rp_dir_scan(dir, "reqprof-b", 10, &l) == 0);
    const rp_dir_entry *e = find(&l, "reqprof-b.html");
    CHECK(e != NULL && e->size == 6);
    rp_dir_list_free(&l);
}

static void
test_put_failure_leaves_nothing_of_the_files(void)
{
    char t1[256], p1[256], t2[256], p2[256];
    path_of(t1, sizeof(t1), "reqprof-c.json.tmp");
    path_of(p1, sizeof(p1), "reqprof-c.json");
    /* The second temporary file cannot be created: its directory is missing. */
    path_of(t2, sizeof(t2), "missing/reqprof-c.html.tmp");
    path_of(p2, sizeof(p2), "reqprof-c.html");
    rp_out_file files[] = {{t1, p1, "{}", 2}, {t2, p2, "<html>", 6}};
    CHECK(rp_put_files(NULL, 0, files, 2) == ENOENT);
    CHECK(!exists("reqprof-c.json.tmp") && !exists("reqprof-c.json"));
    CHECK(!exists("reqprof-c.html"));
    /* The second rename fails (its target is a directory): the first file,
     * already placed, is removed again. */
    char t3[256], p3[256];
    path_of(t3, sizeof(t3), "reqprof-d.html.tmp");
    path_of(p3, sizeof(p3), "reqprof-d.html");
    CHECK(mkdir(p3, 0700) == 0);
    char sub[256];
    path_of(sub, sizeof(sub), "reqprof-d.html/x");
    make_file("reqprof-d.html/x", 1);
    rp_out_file more[] = {{t1, p1, "{}", 2}, {t3, p3, "<html>", 6}};
    CHECK(rp_put_files(NULL, 0, more, 2) != 0);
    CHECK(!exists("reqprof-c.json") && !exists("reqprof-c.json.tmp"));
    CHECK(!exists("reqprof-d.html.tmp"));
    CHECK(unlink(sub) == 0 && rmdir(p3) == 0);
    /* A file that exists already is never a temporary file. */
    make_file("reqprof-e.tmp", 1);
    char t4[256], p4[256];
    path_of(t4, sizeof(t4), "reqprof-e.tmp");
    path_of(p4, sizeof(p4), "reqprof-e.json");
    rp_out_file clash[] = {{t4, p4, "{}", 2}};
    CHECK(rp_put_files(NULL, 0, clash, 1) == EEXIST);
}

static void
remove_all(void)
{
    rp_dir_list l;
    if (rp_dir_scan(dir, "", 1000, &l) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            char path[256];
            path_of(path, sizeof(path), l.items[i].name);
            unlink(path);
        }
        rp_dir_list_free(&l);
    }
    rmdir(dir);
}

int
main(void)
{
    strcpy(dir, "/tmp/reqprof-outfiles-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_scan_lists_prefixed_regular_files_with_sizes);
    RUN(test_scan_of_a_missing_directory_is_an_errno);
    RUN(test_put_removes_then_places_every_file);
    RUN(test_put_failure_leaves_nothing_of_the_files);
    remove_all();
    return check_summary();
}
