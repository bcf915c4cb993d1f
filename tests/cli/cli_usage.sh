#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# notifier without a cluster: keygen's exact format, help and version, and
# every usage error (bad flag, command, id, match, weight, number, address,
# missing or bad key, missing server) exits 2 with exactly one line on
# stderr and nothing on stdout, before any network is touched.
source "$(dirname "$0")/lib.sh"

N=$NOTIFIER
KEY=$T/key
KEY64_RE='^[A-Za-z0-9+/]{43}=$'

step "keygen prints one base64 line of a 32-byte key"
expect 0 "$N" keygen
[ "$(wc -l <"$T/out")" = 1 ] || fail "keygen printed $(wc -l <"$T/out") lines"
grep -qE "$KEY64_RE" "$T/out" || fail "keygen printed '$(cat "$T/out")'"
[ "$(python3 -c 'import base64,sys; print(len(base64.b64decode(open(sys.argv[1]).read().strip(), validate=True)))' "$T/out")" = 32 ] ||
    fail "keygen's key is not 32 bytes"
cp "$T/out" "$KEY"
expect 0 "$N" keygen
cmp -s "$T/out" "$KEY" && fail "two keygen runs printed the same key"
[ ! -s "$T/err" ] || fail "keygen wrote to stderr"

step "keygen --json and --output"
expect 0 "$N" keygen --json
py "$T/out" 'set(d) == {"key"} and len(d["key"]) == 44' ||
    fail "keygen --json printed $(cat "$T/out")"
expect 0 "$N" keygen -o "$T/key2"
[ ! -s "$T/out" ] || fail "keygen -o printed on stdout"
grep -qE "$KEY64_RE" "$T/key2" || fail "keygen -o wrote '$(cat "$T/key2")'"
[ "$(stat -c %a "$T/key2")" = 600 ] || fail "keygen -o file mode $(stat -c %a "$T/key2")"
cp "$T/key2" "$T/key2.before"
expect_err 1 notifier 'key2' "$N" keygen --output "$T/key2"
cmp -s "$T/key2" "$T/key2.before" || fail "keygen -o overwrote a file"
usage "$N" keygen extra

step "help and version"
expect 0 "$N" --version
grep -qxE 'notifier [0-9]+\.[0-9]+\.[0-9]+' "$T/out" || fail "version: $(cat "$T/out")"
expect 0 "$N" --help
grep -q '^usage: notifier' "$T/out" || fail "no usage in --help"
cp "$T/out" "$T/help"
for c in keygen pub rpc sub reply members subs wait stats bench; do
    grep -qE "^  $c " "$T/help" || fail "--help does not list $c"
    expect 0 "$N" "$c" --help
    grep -q "^usage: notifier $c" "$T/out" || fail "$c --help: $(head -n 1 "$T/out")"
    expect 0 "$N" help "$c"
    grep -q "^usage: notifier $c" "$T/out" || fail "help $c: $(head -n 1 "$T/out")"
done
expect 0 "$N" -h
expect 0 "$N" pub -h
expect 0 "$N" help
usage "$N" help nosuch

step "bad commands and flags"
usage "$N"
usage "$N" frobnicate
usage "$N" --bogus
usage "$N" pub --bogus a 1 c x
usage "$N" -x pub a 1 c x
usage "$N" --json=1 members
usage "$N" pub a 1 c x --timeout
usage "$N" pub --slice 2 a 1 c x
usage "$N" rpc --count 2 a 1 c x
usage "$N" members --echo
usage "$N" wait --listen 127.0.0.1:0
usage "$N" keygen --members 3
usage "$N" pub
usage "$N" pub a 1
usage "$N" pub a 1 c x y
usage "$N" rpc a
usage "$N" sub a all
usage "$N" sub a all c x
usage "$N" members extra
usage "$N" reply a all c
usage "$N" reply a all c resp --echo
usage "$N" pub "" 1 c x
usage "$N" pub a 1 "" x
usage "$N" pub "$(printf 'o%.0s' {1..256})" 1 c x
grep -q "\.\.\.'" "$T/err" || fail "a long argument is not cut in the message"

step "ids are decimal, 0x hex or @text, strictly"
for id in x -1 +1 " 1" "1 " 1.0 1e3 18446744073709551616 0x 0x1g \
    0x1ffffffffffffffff 0xffffffffffffffff0 @ "" 0b1 ＿1; do
    usage "$N" -s 127.0.0.1:9 pub a "$id" c x
    grep -q 'bad id' "$T/err" || fail "id '$id': $(cat "$T/err")"
done
# A good id gets past the id check to the next one (the missing key).
for id in 0 18446744073709551615 0xffffffffffffffff 0XAB 007 @user:42 @@; do
    usage "$N" -s 127.0.0.1:9 pub a "$id" c x
    grep -q 'no cluster key' "$T/err" || fail "id '$id' refused: $(cat "$T/err")"
done
usage "$N" -s 127.0.0.1:9 rpc a 0x10000000000000000 c x
# A newline in a bad argument stays on one line.
usage "$N" -s 127.0.0.1:9 pub a $'1\n2' c x
grep -qF "'1\\x0a2'" "$T/err" || fail "escaped id: $(cat "$T/err")"

step "matches are MASK:VALUE or all"
for m in 3:4 x 1: :1 ALL All -1:0 0x:1 1:1:1 "3 :1" 0x10000000000000000:0 \
    18446744073709551616:0 ""; do
    usage "$N" -s 127.0.0.1:9 sub a "$m" c
    grep -q 'bad match' "$T/err" || fail "match '$m': $(cat "$T/err")"
done
for m in all 0:0 3:1 0x3:0x2 0xffffffffffffffff:0x8000000000000000; do
    usage "$N" -s 127.0.0.1:9 sub a "$m" c
    grep -q 'no cluster key' "$T/err" || fail "match '$m' refused: $(cat "$T/err")"
done
usage "$N" -s 127.0.0.1:9 sub a 3:4 c
grep -q 'outside MASK' "$T/err" || fail "3:4: $(cat "$T/err")"

step "weights, counts, timeouts and member counts"
for w in 0 0.0 -1 +1 nan NaN inf -inf 1e999 1e-999 0x10 abc 1.5.2 "" " 1"; do
    usage "$N" -s 127.0.0.1:9 sub a all c --slice "$w"
    grep -q 'weight' "$T/err" || fail "weight '$w': $(cat "$T/err")"
done
for w in 1 3 0.25 .5 1e3; do
    usage "$N" -s 127.0.0.1:9 sub a all c --slice "$w"
    grep -q 'no cluster key' "$T/err" || fail "weight '$w' refused: $(cat "$T/err")"
done
for v in -1 x 1.5 4294967296 0x10 ""; do
    usage "$N" -s 127.0.0.1:9 sub a all c --count "$v"
done
usage "$N" -s 127.0.0.1:9 pub a 1 c x --count 0
for v in -1 x 2147483648 1s ""; do
    usage "$N" -s 127.0.0.1:9 --timeout "$v" members
done
for v in -1 x 1000001 ""; do
    usage "$N" -s 127.0.0.1:9 wait --members "$v"
done
usage "$N" --log-level loud -s 127.0.0.1:9 members

step "addresses"
for s in nohost 127.0.0.1 127.0.0.1:99999 127.0.0.1:0 :80 "a:1,,b:2" "a:1," \
    ",a:1" "" "a b:1" "[::1:80"; do
    usage "$N" -s "$s" -k "$KEY" members
    grep -q 'bad server address' "$T/err" || fail "server '$s': $(cat "$T/err")"
done
usage "$N" -k "$KEY" --server=bad members
usage "$N" -k "$KEY" -s 127.0.0.1:9 sub a all c --listen nohost
usage "$N" -k "$KEY" -s 127.0.0.1:9 sub a all c --listen 127.0.0.1:70000
usage "$N" -k "$KEY" -s 127.0.0.1:9 reply a all c --echo --advertise 10.0.0.1:0
NOTIFIER_SERVER="not an address" usage "$N" -k "$KEY" members
grep -q 'NOTIFIER_SERVER' "$T/err" || fail "env server: $(cat "$T/err")"

step "a server is never assumed"
usage "$N" -k "$KEY" members
grep -qx 'notifier: members: no server: give -s/--server HOST:PORT or set NOTIFIER_SERVER' "$T/err" ||
    fail "no server: $(cat "$T/err")"
usage "$N" -k "$KEY" pub a 1 c x
usage "$N" -k "$KEY" wait

step "a cluster key is required and checked"
usage "$N" -s 127.0.0.1:9 members
grep -qx 'notifier: members: no cluster key: give -k/--key-file or set NOTIFIER_KEY/NOTIFIER_KEY_FILE' "$T/err" ||
    fail "no key: $(cat "$T/err")"
NOTIFIER_KEY=garbage usage "$N" -s 127.0.0.1:9 members
grep -q 'NOTIFIER_KEY: authentication failed' "$T/err" || fail "env key: $(cat "$T/err")"
NOTIFIER_KEY="$(head -c 40 "$KEY")" usage "$N" -s 127.0.0.1:9 members
usage "$N" -s 127.0.0.1:9 -k "$T/nonexistent" members
grep -q "key file .*nonexistent: No such file" "$T/err" || fail "missing key file: $(cat "$T/err")"
echo "not a key" >"$T/badkey"
usage "$N" -s 127.0.0.1:9 -k "$T/badkey" members
NOTIFIER_KEY_FILE="$T/badkey" usage "$N" -s 127.0.0.1:9 members
usage "$N" -s 127.0.0.1:9 -k "$T" members
printf '%s\0junk' "$(cat "$KEY")" >"$T/nulkey"
usage "$N" -s 127.0.0.1:9 -k "$T/nulkey" members
# NOTIFIER_KEY_FILE wins over NOTIFIER_KEY.
NOTIFIER_KEY_FILE="$T/badkey" NOTIFIER_KEY="$(cat "$KEY")" \
    usage "$N" -s 127.0.0.1:9 members
grep -q 'key file' "$T/err" || fail "key precedence: $(cat "$T/err")"

step "flags win over the environment"
# With good flags the bad environment is never read: the command runs and
# fails (exit 1: nothing listens there), it is not a usage error.
DEAD=127.0.0.1:$(free_port)
NOTIFIER_SERVER=garbage NOTIFIER_KEY=garbage NOTIFIER_KEY_FILE=/nonexistent \
    expect_err 1 notifier "$DEAD" "$N" -s "$DEAD" -k "$KEY" --timeout 0 wait --members 2
NOTIFIER_SERVER="$DEAD" NOTIFIER_KEY="$(cat "$KEY")" \
    expect_err 1 notifier "$DEAD" "$N" --timeout 0 wait --members 2
# Keys from a file given by environment work too.
NOTIFIER_SERVER="$DEAD" NOTIFIER_KEY_FILE="$KEY" \
    expect_err 1 notifier 'wait' "$N" --timeout 0 wait --members 2
# Options may come before or after the command.
expect_err 1 notifier 'wait' "$N" wait --members 2 --timeout 0 -s "$DEAD" -k "$KEY"
