/* gos_ws: the TLS files checked before libwebsockets loads them
 * (ws_internal.h), so that a wrong file is one sentence that names it
 * rather than OpenSSL's error queue in lws's log. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ws_internal.h"

/* An encrypted key is refused rather than prompted for on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

bool ws_tls_check(const char *cert, const char *key, char *err, size_t errlen)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	bool ok = false;
	FILE *f = fopen(cert, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read --tls-cert %s: %s", cert, strerror(errno));
		goto out;
	}
	x = PEM_read_X509(f, NULL, no_password, NULL);
	fclose(f);
	if (!x) {
		snprintf(err, errlen, "--tls-cert %s holds no PEM certificate", cert);
		goto out;
	}
	if (!(f = fopen(key, "r"))) {
		snprintf(err, errlen, "cannot read --tls-key %s: %s", key, strerror(errno));
		goto out;
	}
	k = PEM_read_PrivateKey(f, NULL, no_password, NULL);
	fclose(f);
	if (!k) {
		snprintf(err, errlen, "--tls-key %s holds no PEM private key (or one encrypted "
		         "with a passphrase, which gos cannot ask for)", key);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		snprintf(err, errlen, "--tls-key %s is not the private key of the certificate "
		         "in --tls-cert %s", key, cert);
		goto out;
	}
	ok = true;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	return ok;
}
