/* Tries the system calls named on the command line and prints, for each,
 * "NAME ok" or "NAME errno N": what a seccomp filter let through or refused.
 * "euid" prints the effective user ID (for setuid and no_new_privs checks). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long try(const char *name) {
    if (!strcmp(name, "keyctl"))  /* KEYCTL_GET_KEYRING_ID of the session keyring */
        return syscall(SYS_keyctl, 0, -3, 0);
    if (!strcmp(name, "add_key"))
        return syscall(SYS_add_key, "user", "probe", "x", 1, -2);
    if (!strcmp(name, "kexec_load"))
        return syscall(SYS_kexec_load, 0, 0, NULL, 0);
    if (!strcmp(name, "open_by_handle_at"))
        return syscall(SYS_open_by_handle_at, -1, NULL, 0);
    if (!strcmp(name, "unshare_user"))
        return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "clone3"))
        return syscall(SYS_clone3, NULL, 0);
    if (!strcmp(name, "mkdir"))
        return syscall(SYS_mkdir, "/tmp/probe-dir", 0755);
    if (!strcmp(name, "getpid"))
        return syscall(SYS_getpid);
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "euid")) {
            printf("euid %d\n", (int)geteuid());
            continue;
        }
        errno = 0;
        long r = try(argv[i]);
        if (r == -2) {
            printf("%s unknown\n", argv[i]);
        } else if (r < 0) {
            printf("%s errno %d\n", argv[i], errno);
        } else {
            printf("%s ok\n", argv[i]);
        }
    }
    return 0;
}
