#!/usr/bin/env bash
# Starts a disposable OpenLDAP slapd for ogd's FedID (LDAP) login tests, and prints the
# environment that points the tests at it:
#   eval "$(scripts/start-slapd.sh)"   # then tests/api/test_ldap.py runs its cases
# Everything lives under LDAPBASE (default /tmp/ogd-slapd): a test CA and a server
# certificate for 127.0.0.1/localhost made with openssl (StartTLS), a second CA that
# signed nothing (for the "untrusted CA" test), a generated slapd.conf, an MDB database
# filled with slapadd, and the server log. slapd listens on ldap://127.0.0.1:LDAPPORT
# (default 63890; StartTLS) and ldaps://127.0.0.1:LDAPPORT+1 (TLS from the start), and on
# ldap://127.0.0.2:LDAPPORT+2, an address its certificate does not name (host name check). Test entries under dc=fed,dc=cclrc,dc=ac,dc=uk, ou=people:
#   uid=fedtest      password fedpass    mail fedtest@test.com
#   uid=fed,user+1   password commapass  mail fedcomma@test.com   (DN metacharacters)
# Running it again while the server is up just prints the environment.
# scripts/stop-slapd.sh removes it all.
set -euo pipefail

LDAPBASE=${LDAPBASE:-/tmp/ogd-slapd}
LDAPPORT=${LDAPPORT:-63890}
SUFFIX="dc=fed,dc=cclrc,dc=ac,dc=uk"

show_env() {
  echo "export OGD_TEST_LDAP_URL=ldap://127.0.0.1:$LDAPPORT"
  echo "export OGD_TEST_LDAPS_URL=ldaps://127.0.0.1:$((LDAPPORT + 1))"
  echo "export OGD_TEST_LDAP_WRONG_HOST_URL=ldap://127.0.0.2:$((LDAPPORT + 2))"
  echo "export OGD_TEST_LDAP_CA=$LDAPBASE/ca.pem"
  echo "export OGD_TEST_LDAP_OTHER_CA=$LDAPBASE/other-ca.pem"
  echo "export OGD_TEST_LDAP_BIND_DN='uid={username},ou=people,$SUFFIX'"
  echo "export OGD_TEST_LDAP_BASE=$SUFFIX"
}

for tool in slapd slapadd slappasswd openssl; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "start-slapd: $tool is missing; install the slapd and openssl packages" >&2
    exit 1
  fi
done
export PATH=$PATH:/usr/sbin

if [ -f "$LDAPBASE/slapd.pid" ] && kill -0 "$(cat "$LDAPBASE/slapd.pid")" 2>/dev/null; then
  echo "start-slapd: server already running in $LDAPBASE" >&2
  show_env
  exit 0
fi

# Leftovers of a crashed run: clear them out first.
LDAPBASE=$LDAPBASE "$(dirname "$0")/stop-slapd.sh" >/dev/null 2>&1 || true
mkdir -p "$LDAPBASE/db"
cd "$LDAPBASE"

# Certificates: a test CA, the server's certificate (SAN 127.0.0.1 and localhost), and
# an unrelated CA.
ssl() { openssl "$@" >>"$LDAPBASE/openssl.log" 2>&1; }
ssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3 -subj "/CN=ogd test CA"
ssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 3 \
  -subj "/CN=ogd unrelated test CA"
ssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
ssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days 3 -extfile server.ext
chmod 600 ca.key other-ca.key server.key

rootpw=$(slappasswd -s "$(head -c 24 /dev/urandom | base64)")
cat >slapd.conf <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $LDAPBASE/slapd.pid
argsfile $LDAPBASE/slapd.args
logfile $LDAPBASE/slapd.log
loglevel stats
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile $LDAPBASE/ca.pem
TLSCertificateFile $LDAPBASE/server.pem
TLSCertificateKeyFile $LDAPBASE/server.key
database mdb
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $rootpw
directory $LDAPBASE/db
maxsize 10485760
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
CONF

cat >data.ldif <<LDIF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: fed
o: ogd test directory

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: uid=fedtest,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: fedtest
cn: fedtest
sn: Test
mail: fedtest@test.com
userPassword: $(slappasswd -s fedpass)

dn: uid=fed\,user\+1,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: fed,user+1
cn: fed,user+1
sn: Comma
mail: fedcomma@test.com
userPassword: $(slappasswd -s commapass)
LDIF
slapadd -q -f slapd.conf -l data.ldif >"$LDAPBASE/slapadd.log" 2>&1

slapd -f "$LDAPBASE/slapd.conf" -h "ldap://127.0.0.1:$LDAPPORT/ ldaps://127.0.0.1:$((LDAPPORT + 1))/ ldap://127.0.0.2:$((LDAPPORT + 2))/"
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$LDAPPORT") 2>/dev/null; then
    show_env
    exit 0
  fi
  sleep 0.1
done
echo "start-slapd: slapd did not start; see $LDAPBASE/slapd.log" >&2
exit 1
