/* libFuzzer target for the --users-file parser (gos_users_parse): any bytes
 * parse to a table or to one error sentence that names a line, never
 * both; every user in a table is well formed (name, token, role, burst with
 * rate), unique, and found again by its name and by its token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gos_users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct gos_users *u = gos_users_parse((const char *)data, size, "F", err, sizeof(err));
	if (!u) {
		if (strncmp(err, "F line ", 7) != 0)
			abort();
		return 0;
	}
	if (err[0])
		abort();
	for (size_t i = 0; i < u->n; i++) {
		const struct gos_user *e = &u->user[i];
		size_t nl = strlen(e->name);
		if (nl == 0 || nl > GOS_USER_NAME_MAX || e->role == GOS_ROLE_NONE ||
		    e->token_len != strlen(e->token) || !gos_users_token_ok(e->token, e->token_len) ||
		    (e->rate && !e->burst) || (!e->rate && e->burst) ||
		    !strcmp(e->name, GOS_USERS_ANONYMOUS))
			abort();
		if (gos_users_find(u, e->name) != e || gos_users_match(u, e->token, e->token_len) != e)
			abort();
	}
	gos_users_destroy(u);
	return 0;
}
