/* s2s/tar.h — POSIX ustar archives, member by member.
 *
 * The writer emits deterministic ustar: mtime 0, uid/gid 0, uname/gname empty, mode 0644, no
 * padding to 10 KiB records, the 1024-byte end-of-archive marker on close. Names longer than
 * 100 bytes use the ustar prefix field, or a pax 'x' header ("path") when they cannot be split.
 *
 * The reader accepts ustar, GNU (long names 'L') and pax ('x' and 'g' headers: path, size),
 * as written by GNU tar and Python's tarfile; it skips directories, verifies header checksums and
 * reports where it stopped (member name, byte offset). For the higher-level sample grouping, see
 * s2s/sample.h. */
#ifndef S2S_TAR_H
#define S2S_TAR_H

#include <stdint.h>
#include <stdio.h>
#include "s2s/err.h"

typedef struct s2s_tar_writer s2s_tar_writer;

/* The writer does not own fp; name is used in messages. */
s2s_tar_writer *s2s_tar_writer_new(FILE *fp, const char *name, s2s_err *err);
/* Writes one regular-file member. Offsets of header and data are returned if not NULL (for
 * indexes): *hdr_off is the offset of the first header block (pax header included), *data_off
 * the offset of the member's data. */
int s2s_tar_write(s2s_tar_writer *w, const char *name, const void *data, size_t size,
                  uint64_t *hdr_off, uint64_t *data_off, s2s_err *err);
/* Bytes written so far. */
uint64_t s2s_tar_writer_offset(const s2s_tar_writer *w);
/* Streaming a member whose data is not in memory: begin writes the header(s) for `size` bytes
 * (as s2s_tar_write would), more appends data, end writes the padding. The caller must append
 * exactly `size` bytes between begin and end, or the archive is corrupt. 0 or negative. */
int s2s_tar_write_begin(s2s_tar_writer *w, const char *name, size_t size, s2s_err *err);
int s2s_tar_write_more(s2s_tar_writer *w, const void *data, size_t n, s2s_err *err);
int s2s_tar_write_end(s2s_tar_writer *w, size_t size, s2s_err *err);
/* Writes the end-of-archive marker (two zero blocks) and frees w. Does not close fp. */
int s2s_tar_writer_finish(s2s_tar_writer *w, s2s_err *err);
/* Frees w without writing the marker (the output then reads as truncated). Safe with NULL. */
void s2s_tar_writer_free(s2s_tar_writer *w);

typedef struct s2s_tar_reader s2s_tar_reader;

typedef struct s2s_tar_entry {
    char *name;         /* full member name (pax path applied) */
    uint64_t size;      /* data size */
    uint64_t hdr_off;   /* offset of the first header block of this member */
    uint64_t data_off;  /* offset of its data */
    char type;          /* '0' regular (directories and links are skipped, not returned) */
} s2s_tar_entry;

/* The reader does not own fp (any FILE*, seekable or not); name is used in messages. */
s2s_tar_reader *s2s_tar_reader_new(FILE *fp, const char *name, s2s_err *err);
/* Reads the next regular member's header. Returns 1 and fills *e (valid until the next call),
 * 0 at a proper end-of-archive marker, negative on error — including EOF without the marker
 * ("truncated"), a bad checksum, or a size past the end. */
int s2s_tar_next(s2s_tar_reader *r, s2s_tar_entry **e, s2s_err *err);
/* Reads the current member's data into a malloc'd buffer (NUL-terminated, not counted). */
int s2s_tar_read_data(s2s_tar_reader *r, unsigned char **data, size_t *size, s2s_err *err);
/* Reads up to max bytes of the current member's data into buf (instead of s2s_tar_read_data,
 * for members too large to hold in memory). Returns the count (> 0), 0 once the data is all
 * read (its padding is then skipped and the member is done), or negative (truncated: EFORMAT). */
long s2s_tar_read_some(s2s_tar_reader *r, void *buf, size_t max, s2s_err *err);
/* Set lenient=1 to accept EOF without the end-of-archive marker (as GNU tar does). */
void s2s_tar_reader_set_lenient(s2s_tar_reader *r, int lenient);
void s2s_tar_reader_free(s2s_tar_reader *r);

#endif
