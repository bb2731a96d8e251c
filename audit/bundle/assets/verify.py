#!/usr/bin/env python3
"""Verify a Rationale export bundle offline, with the Python standard library only (Python 3.9+).

    python3 verify.py bundle.zip

Checks, in order (FORMAT.md describes each): every file's SHA-256 against manifest.json, and that no
file is missing or unlisted; the checkpoint's Ed25519 signature (RFC 8032, implemented below) by a key in
keys.json whose C2SP key hash matches; every entry's leaf hash (RFC 9162: SHA-256(0x00 || bytes)), its
"index" field, and its inclusion proof against the checkpoint's root; that every decision and explanation
in data/*.jsonl is one of the entries. Prints a line per check; exits 0 if all hold, 1 naming the first
failure.
"""

import base64
import hashlib
import json
import re
import sys
import zipfile

# --- Ed25519 verification, RFC 8032 section 5.1.7 --------------------------------------------------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p, q):
    x1, y1, z1, _ = p
    x2, y2, z2, _ = q
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decode_point(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


GY = 4 * pow(5, P - 2, P) % P
G = (_recover_x(GY, 0), GY, 1, _recover_x(GY, 0) * GY % P)


def ed25519_verify(public, message, signature):
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public`` (32 bytes)."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public)
    r = _decode_point(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _equal(_mul(s, G), _add(r, _mul(k, a)))


# --- RFC 9162 section 2.1.3.2 inclusion proof verification -----------------------------------------
def _node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_ok(leaf, index, size, proof, root):
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- The bundle -------------------------------------------------------------------------------------
class Failed(Exception):
    pass


def key_hash(name, public):
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


def check_files(bundle):
    names = set(bundle.namelist())
    if "manifest.json" not in names:
        raise Failed("manifest.json is missing")
    manifest = json.loads(bundle.read("manifest.json"))
    listed = manifest["files"]
    for name in sorted(names - set(listed) - {"manifest.json"}):
        raise Failed(f"file {name} is not listed in manifest.json")
    for name in sorted(listed):
        if name not in names:
            raise Failed(f"file {name} listed in manifest.json is missing")
        data = bundle.read(name)
        if hashlib.sha256(data).hexdigest() != listed[name]["sha256"] or len(data) != listed[name]["size"]:
            raise Failed(f"file {name} does not match its SHA-256 in manifest.json (edited)")
    return manifest, len(listed)


def check_checkpoint(bundle, manifest):
    note = bundle.read("checkpoint.txt").decode("utf-8")
    keys = json.loads(bundle.read("keys.json"))["keys"]
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise Failed("checkpoint.txt is not a signed note")
    text += "\n"
    verified_by = None
    for line in signatures.strip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise Failed("checkpoint.txt has a malformed signature line")
        name, _, blob = line[2:].partition(" ")
        raw = base64.b64decode(blob)
        for key in keys:
            public = base64.b64decode(key["public_key"])
            if key["name"] == name and key_hash(name, public) == raw[:4]:
                if not ed25519_verify(public, text.encode(), raw[4:]):
                    raise Failed(f"checkpoint signature by key {raw[:4].hex()} does not verify")
                verified_by = raw[:4].hex()
    if verified_by is None:
        raise Failed("checkpoint is not signed by any key in keys.json")
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != manifest["origin"] or size != manifest["tree_size"]:
        raise Failed("checkpoint origin or tree size differs from manifest.json")
    return size, root, verified_by


def check_entries(bundle, size, root):
    seen = {}
    proofs = [json.loads(line) for line in bundle.read("proofs.jsonl").decode().splitlines() if line]
    for item in proofs:
        index = item["index"]
        name = f"entries/{index}.json"
        try:
            data = bundle.read(name)
        except KeyError:
            raise Failed(f"entry {index}: {name} is missing") from None
        match = re.match(rb'\{"index":(0|[1-9][0-9]*),', data)
        if not match or int(match.group(1)) != index:
            raise Failed(f"entry {index}: its bytes do not carry index {index}")
        leaf = hashlib.sha256(b"\x00" + data).digest()
        if leaf.hex() != item["leaf_hash"]:
            raise Failed(f"entry {index}: bytes do not hash to the listed leaf hash")
        if not inclusion_ok(leaf, index, size, [bytes.fromhex(h) for h in item["proof"]], root):
            raise Failed(f"entry {index}: inclusion proof does not lead to the checkpoint root")
        seen[index] = json.loads(data)
    entry_files = {n for n in bundle.namelist() if n.startswith("entries/")}
    if len(entry_files) != len(seen):
        raise Failed("an entry file has no inclusion proof in proofs.jsonl")
    return seen


def check_data(bundle, entries):
    payloads = {}
    for entry in entries.values():
        payload = entry["payload"]
        key = payload.get("explanation_id") or payload.get("decision_id")
        payloads[(entry["type"], key)] = payload
    checked = 0
    for name, kind, key in (
        ("data/decisions.jsonl", "decision.recorded", "decision_id"),
        ("data/explanations.jsonl", None, "explanation_id"),
    ):
        for line in bundle.read(name).decode().splitlines():
            record = json.loads(line)
            types = [kind] if kind else ["explanation.recorded", "explanation.failed"]
            if not any(payloads.get((t, record[key])) == record["payload"] for t in types):
                raise Failed(f"{name}: record {record[key]} is not one of the verified entries")
            checked += 1
    return checked


def verify(path, out=print):
    try:
        with zipfile.ZipFile(path) as bundle:
            manifest, files = check_files(bundle)
            out(f"ok  files: {files} files match manifest.json (SHA-256), none missing or unlisted")
            size, root, key = check_checkpoint(bundle, manifest)
            out(f"ok  checkpoint: tree size {size}, root {root.hex()}, Ed25519 signature by key {key}")
            entries = check_entries(bundle, size, root)
            out(f"ok  entries: {len(entries)} entries hash to their leaves and are included in the checkpoint")
            records = check_data(bundle, entries)
            out(f"ok  data: {records} decision and explanation records match verified entries")
    except Failed as failure:
        out(f"FAILED  {failure}")
        return False
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        out(f"FAILED  the bundle is malformed: {exc}")
        return False
    out("bundle verified")
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(0 if verify(sys.argv[1]) else 1)
