/* format.c - whether the kernel can execute a file, told from its first
 * bytes as the kernel tells it: a "#!" line naming an interpreter that
 * exists and is executable, or an ELF executable for this machine (class,
 * byte order, machine, type), on a file system not mounted noexec; and
 * which interpreter a file needs. It reads the file it is given; whether
 * the interpreter may be trusted is interp.c's. It never runs or logs
 * anything. */
#include "hooks/format.h"

#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hooks/hooks.h"
#include "util.h"

/* This host's ELF: the class and machine it runs natively, and one it
 * runs through the kernel's compat layer (0 none). */
#if defined(__x86_64__) && defined(__LP64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_X86_64
#define HOST_ELF_COMPAT_MACHINE EM_386      /* and x32: ELFCLASS32, EM_X86_64 */
#elif defined(__i386__)
#define HOST_ELF_CLASS ELFCLASS32
#define HOST_ELF_MACHINE EM_386
#elif defined(__aarch64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_AARCH64
#define HOST_ELF_COMPAT_MACHINE EM_ARM
#elif defined(__arm__)
#define HOST_ELF_CLASS ELFCLASS32
#define HOST_ELF_MACHINE EM_ARM
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_S390
#endif
#ifndef HOST_ELF_COMPAT_MACHINE
#define HOST_ELF_COMPAT_MACHINE 0
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELF_DATA ELFDATA2LSB
#else
#define HOST_ELF_DATA ELFDATA2MSB
#endif

/* The interpreter of a "#!" line, read as the kernel reads it: the first
 * word after "#!", and the rest of the line, blanks around it removed, as
 * its one argument (into arg, "" when there is none). Returns false when
 * the line names none, or does not fit in FORMAT_HEAD_MAX bytes. */
static bool script_interpreter(const char *head, size_t k, char *buf, size_t n, char *arg, size_t an)
{
	const char *nl = memchr(head, '\n', k);
	size_t end = nl ? (size_t)(nl - head) : k, i = 2, j = 0, a;

	while (i < end && (head[i] == ' ' || head[i] == '\t'))
		i++;
	while (i < end && head[i] != ' ' && head[i] != '\t' && head[i] != '\0') {
		if (j + 1 >= n)
			return false;
		buf[j++] = head[i++];
	}
	buf[j] = '\0';
	if (j == 0)
		return false;
	/* No newline in a full buffer: the kernel refuses a name that
	 * runs to its end, since it may have been cut. */
	if (!nl && k >= FORMAT_HEAD_MAX && i >= end)
		return false;
	while (i < end && (head[i] == ' ' || head[i] == '\t'))
		i++;
	while (end > i && (head[end - 1] == ' ' || head[end - 1] == '\t'))
		end--;
	a = end - i < an ? end - i : an - 1;
	memcpy(arg, head + i, a);
	arg[a] = '\0';
	return true;
}

static const char *elf_machine_name(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_X86_64: return "x86-64";
	case EM_ARM: return "ARM";
	case EM_AARCH64: return "AArch64";
	case EM_RISCV: return "RISC-V";
	case EM_PPC64: return "PowerPC64";
	case EM_S390: return "s390";
	default: return NULL;
	}
}

/* Why this host cannot run the ELF file whose header is head, or NULL. */
static const char *elf_fault(const unsigned char *head, size_t k, char *why, size_t n)
{
	unsigned cls, data, type, machine;
	const char *name;

	if (k < 20)
		return "truncated ELF header";
	cls = head[EI_CLASS];
	data = head[EI_DATA];
	if (data == ELFDATA2LSB) {
		type = head[16] | (unsigned)head[17] << 8;
		machine = head[18] | (unsigned)head[19] << 8;
	} else {
		type = (unsigned)head[16] << 8 | head[17];
		machine = (unsigned)head[18] << 8 | head[19];
	}
	if (type != ET_EXEC && type != ET_DYN)
		return "ELF file that is not an executable";
#ifdef HOST_ELF_MACHINE
	if (data == HOST_ELF_DATA &&
	    ((cls == HOST_ELF_CLASS && machine == HOST_ELF_MACHINE) ||
	     (HOST_ELF_COMPAT_MACHINE && cls == ELFCLASS32 && machine == HOST_ELF_COMPAT_MACHINE) ||
	     (HOST_ELF_MACHINE == EM_X86_64 && cls == ELFCLASS32 && machine == EM_X86_64)))
		return NULL;
	name = elf_machine_name(machine);
	if (name)
		(void)snprintf(why, n, "ELF executable for another machine (%s%s, %s-bit)", name,
			       data == ELFDATA2MSB ? " big-endian" : "", cls == ELFCLASS64 ? "64" : "32");
	else
		(void)snprintf(why, n, "ELF executable for another machine (e_machine %u, %s-bit)", machine,
			       cls == ELFCLASS64 ? "64" : "32");
	return why;
#else
	(void)name;
	(void)cls;
	(void)machine;
	return NULL;
#endif
}

static int elf_interpreter(int fd, const unsigned char *head, size_t k, char *buf, size_t n);

const char *format_exec_fault(int fd, struct format_interp_cache *cache, bool *ret_script,
			      char *why, size_t n)
{
	unsigned char head[FORMAT_HEAD_MAX];
	char interp[FORMAT_HEAD_MAX], arg[FORMAT_HEAD_MAX];
	int flags = fcntl(fd, F_GETFL);
	ssize_t k;

	struct statvfs sv;

	*ret_script = true;
	if (fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_NOEXEC))
		return "on a file system mounted noexec";
	if (flags < 0 || (flags & O_PATH))
		return NULL;
	do
		k = pread(fd, head, sizeof(head), 0);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return "cannot be read";
	if (k >= 2 && head[0] == '#' && head[1] == '!') {
		const unsigned char *nl = memchr(head, '\n', (size_t)k);

		/* The kernel would look for an interpreter named "sh\r", and
		 * the shell's error would not show the '\r'. */
		if (nl && nl > head && nl[-1] == '\r')
			return "Windows line endings (CRLF): convert it with dos2unix";
		if (!script_interpreter((const char *)head, (size_t)k, interp, sizeof(interp), arg, sizeof(arg)))
			return "'#!' line names no interpreter, or is too long";
		if (!interp_fault(interp, arg, HOOK_PATH_ENV, cache)[0])
			return NULL;
		(void)strscpy(why, n, cache->fault);
		return why;
	}
	*ret_script = false;
	if (k >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
		const char *fault = elf_fault(head, (size_t)k, why, n);

		if (fault || elf_interpreter(fd, head, (size_t)k, interp, sizeof(interp)) < 0)
			return fault;  /* a static binary needs no loader */
		if (!interp_fault(interp, NULL, HOOK_PATH_ENV, cache)[0])
			return NULL;
		(void)strscpy(why, n, cache->fault);
		return why;
	}
	return "not an executable format (no '#!' line, not ELF)";
}

/* The program interpreter of the ELF file on fd (native byte order only):
 * the PT_INTERP entry of its program headers. */
static int elf_interpreter(int fd, const unsigned char *head, size_t k, char *buf, size_t n)
{
	bool is64 = head[EI_CLASS] == ELFCLASS64;
	uint64_t phoff, off = 0, size = 0;
	unsigned phnum, phentsize;
	Elf64_Ehdr e64;
	Elf32_Ehdr e32;

	if (head[EI_DATA] != HOST_ELF_DATA || k < (is64 ? sizeof(e64) : sizeof(e32)))
		return -ENOENT;
	if (is64) {
		memcpy(&e64, head, sizeof(e64));
		phoff = e64.e_phoff;
		phnum = e64.e_phnum;
		phentsize = e64.e_phentsize;
	} else {
		memcpy(&e32, head, sizeof(e32));
		phoff = e32.e_phoff;
		phnum = e32.e_phnum;
		phentsize = e32.e_phentsize;
	}
	/* The kernel reads no more than 64 KiB of program headers either. */
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) ||
	    (uint64_t)phnum * phentsize > 65536)
		return -ENOENT;
	for (unsigned i = 0; i < phnum && !size; i++) {
		off_t at = (off_t)(phoff + (uint64_t)i * phentsize);
		Elf64_Phdr p64;
		Elf32_Phdr p32;

		if (is64) {
			if (pread(fd, &p64, sizeof(p64), at) != (ssize_t)sizeof(p64))
				return -ENOENT;
			if (p64.p_type == PT_INTERP) {
				off = p64.p_offset;
				size = p64.p_filesz;
			}
		} else {
			if (pread(fd, &p32, sizeof(p32), at) != (ssize_t)sizeof(p32))
				return -ENOENT;
			if (p32.p_type == PT_INTERP) {
				off = p32.p_offset;
				size = p32.p_filesz;
			}
		}
	}
	if (size < 2 || size > n || pread(fd, buf, (size_t)size, (off_t)off) != (ssize_t)size ||
	    buf[size - 1] != '\0')
		return -ENOENT;
	return 0;
}

int format_interpreter(int fd_in, char *buf, size_t n)
{
	unsigned char head[FORMAT_HEAD_MAX];
	int flags = fcntl(fd_in, F_GETFL), fd = fd_in, r;
	ssize_t k;

	if (flags < 0)
		return -errno;
	if (flags & O_PATH) {
		/* Opened only to be executed: read it through /proc. */
		char proc[64];

		(void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd_in);
		fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	k = pread(fd, head, sizeof(head), 0);
	if (k < 0)
		r = -errno;
	else if (k >= 2 && head[0] == '#' && head[1] == '!') {
		char arg[FORMAT_HEAD_MAX];

		r = script_interpreter((const char *)head, (size_t)k, buf, n, arg, sizeof(arg)) ? 0 : -ENOENT;
	} else if (k >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
		r = elf_interpreter(fd, head, (size_t)k, buf, n);
	else
		r = -ENOENT;
	if (fd != fd_in)
		close(fd);
	return r;
}
