#!/bin/sh
# mkcerts.sh DIR: throw-away test PKI for cdnsim and the integration tests (openssl CLI).
# Idempotent: does nothing when DIR/done.v4 exists (bump the marker when the set changes). EC P-256 keys, SHA-256 signatures,
# which mbedTLS 2.28 verifies over TLS 1.2.
set -eu
DIR=${1:?usage: mkcerts.sh DIR}
[ -f "$DIR/done.v4" ] && exit 0
mkdir -p "$DIR"
cd "$DIR"
umask 077
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
ca() { # name CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.crt"
}
leaf() { # name CN SAN signing-ca days [startdate enddate]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial \
        -days "$5" -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "cdnagent test CA"
ca other-ca "unrelated test CA"
# An IP endpoint verifies against iPAddress names only (components/http checks
# them; mbedTLS 2.28 alone would not): server-otherip names another address,
# server-ipasdns spells the right one as a DNS name, and both must be refused.
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:cdn.aliyuncs.com" ca 825
leaf server-wronghost wrong.example.net "DNS:wrong.example.net" ca 825
leaf server-otherip localhost "DNS:localhost,IP:127.0.0.2,IP:::2" ca 825
leaf server-ipasdns 127.0.0.1 "DNS:127.0.0.1,DNS:::1" ca 825
leaf cdn.example.com cdn.example.com "DNS:cdn.example.com" ca 365
key cdn.example.com-mismatch.key
# expired: validity entirely in the past (openssl x509 -days cannot go negative,
# so sign with the 'ca' command's explicit dates)
key server-expired.key
openssl req -new -key server-expired.key -subj "/CN=localhost" -out server-expired.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > expired.ext
mkdir -p ca.db && : > ca.db/index.txt && echo 1000 > ca.db/serial
cat > ca.db/ca.cnf <<CNF
[ca]
default_ca=d
[d]
database=ca.db/index.txt
serial=ca.db/serial
new_certs_dir=ca.db
default_md=sha256
policy=p
[p]
commonName=supplied
CNF
openssl ca -batch -config ca.db/ca.cnf -cert ca.crt -keyfile ca.key -in server-expired.csr \
    -startdate 20200101000000Z -enddate 20210101000000Z -extfile expired.ext \
    -out server-expired.crt -notext 2>/dev/null
rm -rf server-expired.csr expired.ext ca.db ca.srl
chmod 644 ./*.crt
rm -f done; touch done.v4
