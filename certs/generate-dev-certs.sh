#!/usr/bin/env bash
# Regenerates the development TLS material in this folder with the openssl command line.
# Everything here is for development and tests only: the private keys are committed on purpose
# and are therefore public. Never use them for a real relay.
#
# Usage: certs/generate-dev-certs.sh            (writes into the folder of this script)
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A CA: self-signed, 10 years.
make_ca() { # name keyfile certfile
  ec_key "$2"
  openssl req -x509 -new -key "$2" -sha256 -days 3650 -subj "/O=secmail development/CN=$1" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$3"
}

# A server certificate signed by a CA, with the given subjectAltName and validity.
# make_leaf cn san ca-cert ca-key key-out cert-out startdate enddate
make_leaf() {
  ec_key "$5"
  openssl req -new -key "$5" -subj "/O=secmail development/CN=$1" -out "$work/leaf.csr"
  mkdir -p "$work/ca"
  : > "$work/ca/index.txt"
  [ -f "$work/ca/serial" ] || openssl rand -hex 16 > "$work/ca/serial"
  cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = dev
[ dev ]
database = $work/ca/index.txt
serial = $work/ca/serial
new_certs_dir = $work/ca
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[ anything ]
organizationName = optional
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $2
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
CNF
  openssl ca -batch -config "$work/ca.cnf" -cert "$3" -keyfile "$4" -extensions leaf -notext \
    -startdate "$7" -enddate "$8" -in "$work/leaf.csr" -out "$6" 2>/dev/null
}

now=$(date -u +%Y%m%d%H%M%SZ)
two_years=$(date -u -d "+730 days" +%Y%m%d%H%M%SZ)

make_ca "secmail development CA" "$work/dev-ca.key" dev-ca.pem
make_leaf localhost "DNS:localhost,IP:127.0.0.1,IP:::1" dev-ca.pem "$work/dev-ca.key" \
  throwaway-relay.key.pem relay.pem "$now" "$two_years"
make_leaf wrong-host.example "DNS:wrong-host.example" dev-ca.pem "$work/dev-ca.key" \
  throwaway-wrong-host.key.pem wrong-host.pem "$now" "$two_years"
make_leaf localhost "DNS:localhost,IP:127.0.0.1,IP:::1" dev-ca.pem "$work/dev-ca.key" \
  throwaway-expired.key.pem expired.pem 20200101000000Z 20210101000000Z
make_ca "unknown CA" "$work/unknown-ca.key" unknown-ca.pem
make_leaf localhost "DNS:localhost,IP:127.0.0.1,IP:::1" unknown-ca.pem "$work/unknown-ca.key" \
  throwaway-unknown-ca-relay.key.pem unknown-ca-relay.pem "$now" "$two_years"

# The relay key's pin: SHA-256 of its DER SubjectPublicKeyInfo, for pinned-key clients.
openssl pkey -in throwaway-relay.key.pem -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 > relay.spki-sha256
chmod 600 throwaway-*.key.pem
echo "Wrote development certificates in $(pwd); relay.pem expires $(openssl x509 -in relay.pem -noout -enddate | cut -d= -f2)"
