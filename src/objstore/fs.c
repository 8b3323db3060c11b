/*
 * fs.c: the filesystem back end of the object store (the embedded default).
 *
 * Objects are files under a root directory at their key's path, so the layout matches
 * the bucket's. Every operation runs on the libuv thread pool. Writes are atomic: a
 * temporary file in the target directory, fsync, rename; readers see the old object or
 * the new one, never a part. Deleting a prefix that ends with '/' removes that directory
 * tree; any other prefix removes the matching entries of its directory.
 */
#define _XOPEN_SOURCE 700
#include "objstore/objstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_MAX_OBJECT ((size_t)2 << 30)

typedef struct fs_state {
    char root[PATH_MAX];
} fs_state;

typedef struct fs_job {
    uv_work_t work;
    obj_op *op;
    fs_state *fs;
} fs_job;

static _Atomic unsigned long tmp_counter;

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0750);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int fs_open(objstore_t *os, const char *url, const objstore_options *opts, char *err,
                   size_t errlen)
{
    const char *path = url + strlen("file://");
    if (!*path) {
        snprintf(err, errlen, "echo.url: no directory in \"%.80s\"", url);
        return -EINVAL;
    }
    fs_state *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    int n;
    if (opts && opts->bucket && *opts->bucket)
        n = snprintf(fs->root, sizeof(fs->root), "%s/%s", path, opts->bucket);
    else
        n = snprintf(fs->root, sizeof(fs->root), "%s", path);
    if (n <= 0 || (size_t)n >= sizeof(fs->root)) {
        free(fs);
        snprintf(err, errlen, "echo.url: path too long");
        return -ENAMETOOLONG;
    }
    int rc = mkdir_p(fs->root);
    if (rc != 0) {
        snprintf(err, errlen, "echo.url: cannot create %s: %s", fs->root, strerror(-rc));
        free(fs);
        return rc;
    }
    objstore_set_backend_data(os, fs);
    return 0;
}

static void fs_close(objstore_t *os)
{
    free(objstore_backend_data(os));
}

static int full_path(fs_state *fs, const char *key, char *out)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", fs->root, key);
    return n > 0 && n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

static void do_get(fs_state *fs, obj_op *op)
{
    char path[PATH_MAX];
    if ((op->status = full_path(fs, op->key, path)) != 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        op->status = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        op->status = -ENOENT;
        close(fd);
        return;
    }
    if ((size_t)st.st_size > FS_MAX_OBJECT) {
        op->status = -EFBIG;
        close(fd);
        return;
    }
    objstore_blob_t *b = objstore_blob_new(NULL, (size_t)st.st_size);
    if (!b) {
        op->status = -ENOMEM;
        close(fd);
        return;
    }
    size_t got = 0;
    while (got < b->len) {
        ssize_t r = read(fd, b->data + got, b->len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            op->status = r < 0 ? -errno : -EIO;
            objstore_blob_unref(b);
            close(fd);
            return;
        }
        got += (size_t)r;
    }
    close(fd);
    op->blob = b;
}

static void do_head(fs_state *fs, obj_op *op)
{
    char path[PATH_MAX];
    struct stat st;
    if ((op->status = full_path(fs, op->key, path)) != 0)
        return;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        op->status = -ENOENT;
        return;
    }
    op->size = (uint64_t)st.st_size;
}

static void do_put(fs_state *fs, obj_op *op)
{
    char path[PATH_MAX], tmp[PATH_MAX + 64];
    if ((op->status = full_path(fs, op->key, path)) != 0)
        return;
    char *slash = strrchr(path, '/');
    *slash = '\0';
    op->status = mkdir_p(path);
    *slash = '/';
    if (op->status)
        return;
    snprintf(tmp, sizeof(tmp), "%.*s/.%s.tmp.%d.%lu", (int)(slash - path), path, slash + 1,
             (int)getpid(), atomic_fetch_add(&tmp_counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        op->status = -errno;
        return;
    }
    size_t done = 0;
    while (done < op->len) {
        ssize_t w = write(fd, op->bytes + done, op->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            op->status = -errno;
            break;
        }
        done += (size_t)w;
    }
    if (op->status == 0 && fsync(fd) != 0)
        op->status = -errno;
    close(fd);
    if (op->status == 0 && rename(tmp, path) != 0)
        op->status = -errno;
    if (op->status != 0)
        unlink(tmp);
}

static void do_delete(fs_state *fs, obj_op *op)
{
    char path[PATH_MAX];
    if ((op->status = full_path(fs, op->key, path)) != 0)
        return;
    if (unlink(path) != 0)
        op->status = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
}

static _Thread_local size_t removed_count;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    if (unlink(path) != 0)
        return errno == ENOENT ? 0 : -1;
    removed_count++;
    return 0;
}

static int remove_tree(const char *path, size_t *count)
{
    removed_count = 0;
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    *count += removed_count;
    return rc == 0 ? 0 : -EIO;
}

static void do_delete_prefix(fs_state *fs, obj_op *op)
{
    char path[PATH_MAX];
    if ((op->status = full_path(fs, op->key, path)) != 0)
        return;
    size_t n = strlen(path);
    if (path[n - 1] == '/') {
        path[n - 1] = '\0';
        op->status = remove_tree(path, &op->count);
        return;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0';
    const char *stem = slash + 1;
    size_t stemlen = strlen(stem);
    DIR *d = opendir(path);
    if (!d) {
        op->status = errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, stem, stemlen) != 0 || e->d_name[0] == '.')
            continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child))
            continue;
        int rc = remove_tree(child, &op->count);
        if (rc)
            op->status = rc;
    }
    closedir(d);
}

static void fs_work(uv_work_t *w)
{
    fs_job *job = w->data;
    obj_op *op = job->op;
    switch (op->kind) {
    case OBJ_OP_GET:
        do_get(job->fs, op);
        break;
    case OBJ_OP_HEAD:
        do_head(job->fs, op);
        break;
    case OBJ_OP_PUT:
        do_put(job->fs, op);
        break;
    case OBJ_OP_DELETE:
        do_delete(job->fs, op);
        break;
    case OBJ_OP_DELETE_PREFIX:
        do_delete_prefix(job->fs, op);
        break;
    }
}

static void fs_after(uv_work_t *w, int status)
{
    fs_job *job = w->data;
    obj_op *op = job->op;
    free(job);
    if (status == UV_ECANCELED)
        op->status = -ECANCELED;
    objstore_backend_done(op);
}

static int fs_submit(objstore_t *os, obj_op *op)
{
    fs_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->op = op;
    job->fs = objstore_backend_data(os);
    job->work.data = job;
    int rc = uv_queue_work(objstore_loop(os), &job->work, fs_work, fs_after);
    if (rc < 0) {
        free(job);
        return rc;
    }
    return 0;
}

const objstore_backend objstore_fs_backend = {
    .scheme = "file",
    .open = fs_open,
    .submit = fs_submit,
    .close = fs_close,
};
