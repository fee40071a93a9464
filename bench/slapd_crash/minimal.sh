#!/usr/bin/env bash
# The slapd crash of issue 15 in three LDAP operations, no concurrency, no bridge:
#
#   1. a group of MEMBERS users, one of them uid=José (composed, NFC);
#   2. ldapmodify with the Permissive Modify control: add member uid=José (decomposed, NFD),
#      a value slapd already holds (distinguishedNameMatch finds them equal): success;
#   3. the same modify again: on Debian's slapd 2.5.13 with olcDbMultival: member 100,20 and
#      more than 100 members, slapd dies (segfault/abort in back_mdb or libc).
#
#   bench/slapd_crash/minimal.sh [--members 150] [--multival H,L | --no-multival]
#                                [--forms nfd|nfc|case] [--no-permissive]
#
# --forms nfc stores the decomposed spelling and adds the composed one (shorter): slapd
# survives, but the group then reads back with one value more than it has members.
#
# It runs a private slapd made by scripts/slapd (shipped config, then the chosen
# olcDbMultival applied offline) on a free loopback port and removes it afterwards.
# Exit status: 0 slapd survived (member count unchanged), 1 slapd died or the group's member
# count changed, 2 setup error.
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SLAPD_SCRIPT="$REPO/scripts/slapd"
MEMBERS=150 MULTIVAL="100,20" FORMS=nfd PERMISSIVE=(-e '!1.2.840.113556.1.4.1413')
while [ $# -gt 0 ]; do
    case "$1" in
        --members) MEMBERS=$2; shift 2 ;;
        --multival) MULTIVAL=$2; shift 2 ;;
        --no-multival) MULTIVAL=""; shift ;;
        --forms) FORMS=$2; shift 2 ;;
        --no-permissive) PERMISSIVE=(); shift ;;
        -h|--help) sed -n "2,20p" "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/slapd-minimal.XXXXXX")
INST="$WORK/slapd"
trap 'python3 "$SLAPD_SCRIPT" stop --dir "$INST" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=dc=scimbridge,dc=local
export LDAPNOINIT=1

python3 "$SLAPD_SCRIPT" start --dir "$INST" --port "$PORT" --nosync >/dev/null 2>&1 || exit 2
python3 "$SLAPD_SCRIPT" stop --dir "$INST" >/dev/null 2>&1
printf 'dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcDbMultival\n%s-\n' \
    "${MULTIVAL:+olcDbMultival: member $MULTIVAL
}" | /usr/sbin/slapmodify -n0 -F "$INST/slapd.d" -l /dev/stdin >/dev/null || exit 2
cd "$WORK" && ulimit -c unlimited 2>/dev/null
eval "$(python3 "$SLAPD_SCRIPT" start --dir "$INST" 2>/dev/null)" || exit 2
PID=$(cat "$INST/run/slapd.pid")
# The kernel names the crashing thread (slapd[TID]), so look only at lines logged from now on.
DMESG_LINES=$(dmesg 2>/dev/null | wc -l)
PW="$WORK/pw"; (umask 077; printf '%s' "$LDAP_BIND_PASSWORD" >"$PW")
LDAP=(-x -H "$LDAP_URL" -D "$LDAP_BIND_DN" -y "$PW")

case "$FORMS" in
    nfd) STORED=$(printf 'Jos\xc3\xa9'); ADDED=$(printf 'Jose\xcc\x81') ;;  # 5 vs 6 bytes
    nfc) STORED=$(printf 'Jose\xcc\x81'); ADDED=$(printf 'Jos\xc3\xa9') ;;  # stored NFD
    case) STORED=jose; ADDED=JOSE ;;                                         # same length
    *) echo "unknown --forms $FORMS" >&2; exit 2 ;;
esac
b64() { printf '%s' "$1" | base64 -w0; }
{
    printf 'dn:: %s\nobjectClass: inetOrgPerson\nuid:: %s\ncn: x\nsn: x\n\n' \
        "$(b64 "uid=$STORED,ou=People,$BASE")" "$(b64 "$STORED")"
    for ((i = 1; i < MEMBERS; i++)); do
        printf 'dn: uid=u%d,ou=People,%s\nobjectClass: inetOrgPerson\nuid: u%d\ncn: x\nsn: x\n\n' \
            "$i" "$BASE" "$i"
    done
    printf 'dn: cn=g,ou=Groups,%s\nobjectClass: groupOfNames\ncn: g\nmember:: %s\n' \
        "$BASE" "$(b64 "uid=$STORED,ou=People,$BASE")"
    for ((i = 1; i < MEMBERS; i++)); do printf 'member: uid=u%d,ou=People,%s\n' "$i" "$BASE"; done
} | ldapadd "${LDAP[@]}" >/dev/null || exit 2

members() {
    ldapsearch "${LDAP[@]}" -LLL -b "cn=g,ou=Groups,$BASE" -s base member 2>/dev/null \
        | grep -c '^member:'
}
echo "multival=${MULTIVAL:-none} members=$MEMBERS forms=$FORMS permissive=${#PERMISSIVE[@]}"
status=0
for step in 1 2 3; do
    printf 'dn: cn=g,ou=Groups,%s\nchangetype: modify\nadd: member\nmember:: %s\n-\n' \
        "$BASE" "$(b64 "uid=$ADDED,ou=People,$BASE")" \
        | ldapmodify "${LDAP[@]}" "${PERMISSIVE[@]}" >/dev/null 2>"$WORK/err"
    rc=$?
    sleep 0.5
    n=$(members)
    if kill -0 "$PID" 2>/dev/null && [ "$n" -gt 0 ]; then alive=alive; else alive=DEAD; fi
    echo "modify $step: ldapmodify exit $rc $(grep -m1 '^ldap' "$WORK/err"); group has $n members; slapd $alive"
    if [ "$alive" = DEAD ]; then
        sleep 2
        dmesg 2>/dev/null | tail -n +$((DMESG_LINES + 1)) | grep "slapd\[" | tail -2
        status=1; break
    fi
    [ "$n" = "$MEMBERS" ] || status=1
done
exit $status
