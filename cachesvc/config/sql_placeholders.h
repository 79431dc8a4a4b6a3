/* sql_placeholders.h - finds the $N parameters of a PostgreSQL statement the way the server
 * does: not inside literals, quoted identifiers, comments or dollar-quoted strings
 * (sql_placeholders.c). Pure; no I/O. */
#ifndef CS_SQL_PLACEHOLDERS_H
#define CS_SQL_PLACEHOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Scans sql for $N placeholders outside literals, quoted identifiers and comments.
 * Sets *highest and the bit (N-1) of *used for N <= 64. False on unterminated text or $0,
 * with the reason in why. */
bool cs_sql_scan_placeholders(
        const char *sql, uint64_t *highest, uint64_t *used, char *why, size_t whylen);

#endif
