#!/usr/bin/env bash
# Reproduce the slapd crash of issue 15 with plain LDAP operations (ldapmodify/ldapadd, no
# bridge) against a private slapd made by scripts/slapd on a free loopback port, optionally
# with a cn=config variant; reports whether slapd survived and what it did.
#
#   bench/slapd_crash/repro.sh [--variant V ...] [--groups 3] [--members 150] [--seconds 60]
#                              [--renamers 3] [--movers 2] [--churners 3]
#                              [--forms nfd|case|ascii] [--keep]
#
# Load: GROUPS groups of MEMBERS users each; every worker is one ldapmodify connection:
#   renamers  modrdn random members between two spellings of their uid that slapd treats as
#             equal (--forms nfd: José.Müller.N composed/decomposed; case: jose/JOSE;
#             ascii: renamed to itself); refint then rewrites the member values
#   movers    what the bridge did after a rename (Repository.move_references): one modify
#             adding one spelling of a member's DN and deleting the other, Permissive Modify
#   churners  delete a member and add it back, two plain modifies, either spelling
# Variants (applied offline with slapmodify before slapd starts; they combine):
#   shipped        directory/schema/slapd-config.ldif.tmpl as it is
#   old            olcDbMultival: member 100,20 (the private slapd's config before issue 15)
#   multival=H,L   olcDbMultival: member H,L
#   nomultival     no olcDbMultival
#   nosortvals     no olcSortVals
#   norefint       refint overlay removed
#   nodynlist      dynlist overlay removed
# A crash is seen as slapd's pid going away; the kernel's segfault line (dmesg) and a gdb
# backtrace of the core file, when they can be read, are printed.
#
# Exit status: 0 slapd survived, 1 slapd died, 2 usage/setup error.
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SLAPD_SCRIPT="$REPO/scripts/slapd"
GROUPS_N=3 MEMBERS=150 SECONDS_RUN=60 RENAMERS=3 CHURNERS=3 FORMS=nfd KEEP=0 MOVERS=2
VARIANTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --variant) VARIANTS+=("$2"); shift 2 ;;
        --groups) GROUPS_N=$2; shift 2 ;;
        --members) MEMBERS=$2; shift 2 ;;
        --seconds) SECONDS_RUN=$2; shift 2 ;;
        --renamers) RENAMERS=$2; shift 2 ;;
        --churners) CHURNERS=$2; shift 2 ;;
        --forms) FORMS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --movers) MOVERS=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=(shipped)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/slapd-crash.XXXXXX")
INST="$WORK/slapd"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=dc=scimbridge,dc=local
MDB="olcDatabase={1}mdb,cn=config"

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    jobs -p | xargs -r kill 2>/dev/null
    wait 2>/dev/null
    python3 "$SLAPD_SCRIPT" stop --dir "$INST" >/dev/null 2>&1
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- the instance, with the chosen variant -------------------------------------------------
python3 "$SLAPD_SCRIPT" start --dir "$INST" --port "$PORT" --nosync >/dev/null || exit 2
python3 "$SLAPD_SCRIPT" stop --dir "$INST" 2>/dev/null
overlay_dn() {  # the olcOverlay={N}name entry of the mdb database
    local f
    f=$(ls "$INST/slapd.d/cn=config/olcDatabase={1}mdb/" | grep -i "}$1.ldif" | head -1)
    [ -n "$f" ] && echo "${f%.ldif},$MDB"
}
for v in "${VARIANTS[@]}"; do
    case "$v" in
        shipped) ldif="" ;;
        old) ldif="dn: $MDB
changetype: modify
replace: olcDbMultival
olcDbMultival: member 100,20
-" ;;
        multival=*) ldif="dn: $MDB
changetype: modify
replace: olcDbMultival
olcDbMultival: member ${v#multival=}
-" ;;
        nomultival) ldif="dn: $MDB
changetype: modify
replace: olcDbMultival
-" ;;
        nosortvals) ldif="dn: olcDatabase={-1}frontend,cn=config
changetype: modify
replace: olcSortVals
-" ;;
        norefint|nodynlist)
            dn=$(overlay_dn "${v#no}")
            # cn=config keeps overlay numbering; deleting the LDIF file is what slapd reads.
            rm -f "$INST/slapd.d/cn=config/olcDatabase={1}mdb/${dn%%,*}.ldif"
            ldif="" ;;
        *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
    if [ -n "$ldif" ]; then
        printf '%s\n' "$ldif" | /usr/sbin/slapmodify -n0 -F "$INST/slapd.d" -l /dev/stdin \
            >/dev/null 2>"$WORK/slapmodify.err" || { cat "$WORK/slapmodify.err" >&2; exit 2; }
    fi
done
# A crash leaves a core file in slapd's working directory (kernel.core_pattern "core").
cd "$WORK" && ulimit -c unlimited 2>/dev/null
eval "$(python3 "$SLAPD_SCRIPT" start --dir "$INST" 2>/dev/null)" || exit 2
PID=$(cat "$INST/run/slapd.pid")
# The kernel names the crashing thread (slapd[TID]), so look only at lines logged from now on.
DMESG_LINES=$(dmesg 2>/dev/null | wc -l)
PW="$WORK/pw"; (umask 077; printf '%s' "$LDAP_BIND_PASSWORD" >"$PW")
export LDAPNOINIT=1
LDAP=(-x -H "ldap://127.0.0.1:$PORT" -D "$LDAP_BIND_DN" -y "$PW")
multival=$(grep -h -i '^olcDbMultival' "$INST/slapd.d/cn=config/olcDatabase={1}mdb.ldif")
sortvals=$(grep -h -i '^olcSortVals' "$INST/slapd.d/cn=config/olcDatabase={-1}frontend.ldif")
overlays=$(ls "$INST/slapd.d/cn=config/olcDatabase={1}mdb/" | sed 's/.ldif//' | tr '\n' ' ')
log "slapd pid $PID port $PORT variant ${VARIANTS[*]}: ${multival:-no multival}; ${sortvals:-no sortvals}; $overlays"

# --- data ---------------------------------------------------------------------------------
b64() { printf '%s' "$1" | base64 -w0; }
# Two spellings of user i's uid that slapd's caseIgnoreMatch treats as equal.
form_a() { case "$FORMS" in
    nfd) printf 'Jos\xc3\xa9.M\xc3\xbcller.%d' "$1" ;;       # José.Müller.N, composed (NFC)
    case|ascii) printf 'jose.mueller.%d' "$1" ;; esac; }
form_b() { case "$FORMS" in
    nfd) printf 'Jose\xcc\x81.Mu\xcc\x88ller.%d' "$1" ;;     # the same, decomposed (NFD)
    case) printf 'JOSE.MUELLER.%d' "$1" ;;
    ascii) printf 'jose.mueller.%d' "$1" ;; esac; }         # ascii: renamed to itself
USERS=$((GROUPS_N * MEMBERS))
{
    for ((i = 0; i < USERS; i++)); do
        a=$(form_a "$i")
        printf 'dn:: %s\nobjectClass: inetOrgPerson\nuid:: %s\ncn: user %d\nsn: %d\n\n' \
            "$(b64 "uid=$a,ou=People,$BASE")" "$(b64 "$a")" "$i" "$i"
    done
    for ((g = 0; g < GROUPS_N; g++)); do
        printf 'dn: cn=group-%d,ou=Groups,%s\nobjectClass: groupOfNames\ncn: group-%d\n' \
            "$g" "$BASE" "$g"
        for ((m = 0; m < MEMBERS; m++)); do
            printf 'member:: %s\n' "$(b64 "uid=$(form_a $((g * MEMBERS + m))),ou=People,$BASE")"
        done
        printf '\n'
    done
} >"$WORK/data.ldif"
ldapadd "${LDAP[@]}" -f "$WORK/data.ldif" >/dev/null || { log "loading the data failed"; exit 2; }
log "loaded $USERS users in $GROUPS_N groups of $MEMBERS members"

# --- load ---------------------------------------------------------------------------------
# Each worker is one ldapmodify -c connection fed an endless LDIF stream until the deadline.
END=$(($(date +%s) + SECONDS_RUN))
renamer() {  # modrdn random members to the other spelling of their uid (refint follows)
    local i a b
    RANDOM=$1
    while [ "$(date +%s)" -lt "$END" ]; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            i=$((RANDOM % USERS)); a=$(form_a "$i"); b=$(form_b "$i")
            if ((RANDOM % 2)); then t=$a; a=$b; b=$t; fi
            printf 'dn:: %s\nchangetype: modrdn\nnewrdn:: %s\ndeleteoldrdn: 1\n\n' \
                "$(b64 "uid=$a,ou=People,$BASE")" "$(b64 "uid=$b")"
        done
    done
}
mover() {  # what the bridge does after a rename (Repository.move_references): add one
    # spelling and delete the other in ONE modify, with the Permissive Modify control
    local i g a b
    RANDOM=$1
    while [ "$(date +%s)" -lt "$END" ]; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            i=$((RANDOM % USERS)); g=$((i / MEMBERS)); a=$(form_a "$i"); b=$(form_b "$i")
            if ((RANDOM % 2)); then t=$a; a=$b; b=$t; fi
            printf 'dn: cn=group-%d,ou=Groups,%s\nchangetype: modify\nadd: member\nmember:: %s\n-\ndelete: member\nmember:: %s\n-\n\n' \
                "$g" "$BASE" "$(b64 "uid=$b,ou=People,$BASE")" "$(b64 "uid=$a,ou=People,$BASE")"
        done
    done
}
churner() {  # delete a member of a group and add it back, in either spelling
    local i g op a
    RANDOM=$1
    while [ "$(date +%s)" -lt "$END" ]; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            g=$((RANDOM % GROUPS_N)); i=$((g * MEMBERS + RANDOM % MEMBERS))
            if ((RANDOM % 2)); then a=$(form_a "$i"); else a=$(form_b "$i"); fi
            for op in delete add; do
                printf 'dn: cn=group-%d,ou=Groups,%s\nchangetype: modify\n%s: member\nmember:: %s\n-\n\n' \
                    "$g" "$BASE" "$op" "$(b64 "uid=$a,ou=People,$BASE")"
            done
        done
    done
}
for ((w = 0; w < RENAMERS; w++)); do
    renamer $((w + 1)) | ldapmodify -c "${LDAP[@]}" >"$WORK/renamer.$w.out" 2>"$WORK/renamer.$w.err" &
done
for ((w = 0; w < MOVERS; w++)); do
    mover $((w + 201)) | ldapmodify -c -e '!1.2.840.113556.1.4.1413' "${LDAP[@]}" \
        >"$WORK/mover.$w.out" 2>"$WORK/mover.$w.err" &
done
for ((w = 0; w < CHURNERS; w++)); do
    churner $((w + 101)) | ldapmodify -c "${LDAP[@]}" >"$WORK/churner.$w.out" 2>"$WORK/churner.$w.err" &
done
START=$(date +%s) died=""
while [ "$(date +%s)" -lt "$END" ]; do
    if ! kill -0 "$PID" 2>/dev/null; then died=$(($(date +%s) - START)); break; fi
    sleep 0.5
done
jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null

renames=$(cat "$WORK"/renamer.*.out | grep -c '^modifying rdn')
modifies=$(cat "$WORK"/*.out | grep -c '^modifying entry')
errors=$(cat "$WORK"/*.err | grep -c '^ldap_')
if [ -n "$died" ]; then
    log "slapd DIED after ${died}s ($renames modrdn and $modifies member modifies sent, $errors errors)"
    sleep 1
    dmesg 2>/dev/null | tail -n +$((DMESG_LINES + 1)) | grep "slapd\[" | tail -3 >&2
    core=$(ls "$WORK"/core* 2>/dev/null | head -1)
    if [ -n "$core" ] && command -v gdb >/dev/null; then
        gdb -q -batch -ex bt /usr/sbin/slapd "$core" 2>/dev/null | grep '^#' | head -15 >&2
    fi
    echo "variant=${VARIANTS[*]} forms=$FORMS groups=$GROUPS_N members=$MEMBERS result=died after=${died}s renames=$renames modifies=$modifies"
    exit 1
fi
# Survived: check that every group still has exactly its members (refint kept up).
bad=0
for ((g = 0; g < GROUPS_N; g++)); do
    n=$(ldapsearch "${LDAP[@]}" -LLL -b "cn=group-$g,ou=Groups,$BASE" -s base member \
        | grep -c '^member:')
    [ "$n" = "$MEMBERS" ] || { log "group-$g has $n members, expected $MEMBERS"; bad=1; }
done
log "slapd survived ${SECONDS_RUN}s: $renames modrdn and $modifies member modifies, $errors errors"
echo "variant=${VARIANTS[*]} forms=$FORMS groups=$GROUPS_N members=$MEMBERS result=alive renames=$renames modifies=$modifies members_ok=$((1 - bad))"
exit 0
