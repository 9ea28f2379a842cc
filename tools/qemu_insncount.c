/*
 * QEMU TCG plugin: counts guest instructions executed between two marker syscalls.
 *
 * The device runner marks a region by calling lseek(fd_of_dev_null, MAGIC, SEEK_SET)
 * (which has no effect): MAGIC_START opens a region, MAGIC_STOP closes it,
 * and the plugin appends the instruction count of the region as one decimal line to the
 * file given by the `out=PATH` plugin argument. Counting is inline (a TB-level add), so
 * it is exact and repeatable for a single-threaded guest.
 *
 * Build: gcc -shared -fPIC -O2 -I DIR_WITH_qemu-plugin.h -o libinsncount.so qemu_insncount.c
 * Use:   qemu-aarch64 -plugin ./libinsncount.so,out=/tmp/counts.txt ...
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define AARCH64_SYS_LSEEK 62
#define MAGIC_START UINT64_C(0x45504544494e5331) /* "EPEDINS1" */
#define MAGIC_STOP  UINT64_C(0x45504544494e5330) /* "EPEDINS0" */

static uint64_t insn_count;
static uint64_t region_start;
static int region_open;
static FILE *out;

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                       uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != AARCH64_SYS_LSEEK) {
        return;
    }
    if (a2 == MAGIC_START) {
        region_start = insn_count;
        region_open = 1;
    } else if (a2 == MAGIC_STOP && region_open) {
        fprintf(out, "%" PRIu64 "\n", insn_count - region_start);
        fflush(out);
        region_open = 0;
    }
}

static void on_plugin_exit(qemu_plugin_id_t id, void *userdata)
{
    if (out != NULL) {
        fclose(out);
        out = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "libinsncount: missing out=PATH argument\n");
        return -1;
    }
    out = fopen(path, "a");
    if (out == NULL) {
        perror("libinsncount: cannot open out file");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
