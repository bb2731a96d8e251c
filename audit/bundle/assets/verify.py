#!/usr/bin/env python3
# ruff: noqa: UP031  (printf-style formatting keeps this file plain for re-implementers)
"""Verify a Rationale export bundle offline, with the Python standard library only (Python 3.9+).

    python3 -I -S verify.py --key VERIFIER_KEY bundle.zip
    python3 -I -S verify.py --key-file deployment.vkey bundle.zip
    python3 -I -S verify.py --key VERIFIER_KEY --witness-key WITNESS_KEY [--witness-key ...] [--quorum N] bundle.zip

VERIFIER_KEY is the deployment's C2SP verifier key (``<name>+<hex key hash>+<base64>``), obtained from the
deployment out of band, never from the bundle. FORMAT.md specifies every check; in order: the archive
(no duplicate, unsafe, unexpected, encrypted or oversized member, no bytes outside its members); the
checkpoint's Ed25519 signature (RFC 8032, implemented below) by a pinned key, or by a later key that the
bundle's key.rotated entries (rotations.jsonl, each signed by its outgoing key and included in the checkpoint)
hand over to from a pinned key; with --witness-key, cosignatures of the checkpoint by at least --quorum
(default: all) of the pinned witnesses (C2SP tlog-cosignature); the export entry and every
entry hashing to a leaf included in that checkpoint (RFC 9162); the manifest bound by the export entry and
every member bound by the manifest; the entries being exactly what the export entry says the filter
matched; and every view (JSONL, Parquet, HTML, PDF, model cards) equal, byte for byte, to the one this file
regenerates from the verified entries.

Exit status: 0 verified; 1 a check failed (the last line names it); 2 usage error; 3 every check holds but
the signature was checked only against keys the bundle carries itself ("signature valid, key not
anchored") — that is NOT verified: anyone can sign a bundle with a key they put in it.

This one file is also the verification core of ``rationale verify --bundle`` and the renderer of the
bundle's views: the exporter writes them with the functions below, so a verifier re-derives them exactly.
"""

import base64
import hashlib
import html
import json
import re
import struct
import sys
import zipfile
import zlib

FORMAT = "rationale-bundle/2"
EXPORT_TYPE = "export.created"
EXPORT_VERSION = 1
EXIT_VERIFIED, EXIT_FAILED, EXIT_USAGE, EXIT_UNANCHORED = 0, 1, 2, 3
MAX_MEMBER_BYTES = 2 << 30  # one member, uncompressed
MAX_TOTAL_BYTES = 8 << 30  # all members, uncompressed
MAX_RATIO = 100  # uncompressed / compressed, for members over 1 MiB: more is a zip bomb
MAX_PDF_DECISIONS = 200
MAX_HTML_CHARTS = 500
PARQUET_ROW_GROUP = 500

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
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public`` (RFC 8032 §5.1.7,
    cofactorless equation [S]B = R + [k]A, S < L required)."""
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
def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


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


# --- C2SP signed notes and verifier keys -------------------------------------------------------------
class Failed(Exception):
    """A check failed; the message names it."""


class Usage(Exception):
    """A command-line argument is wrong."""


LOG_KEY, WITNESS_KEY = b"\x01", b"\x04"  # signature types: Ed25519 notes, Ed25519 cosignature/v1


def key_hash(name, public, alg=LOG_KEY):
    return hashlib.sha256(name.encode() + b"\n" + alg + public).digest()[:4]


def verifier_key(name, public, alg=LOG_KEY):
    return "%s+%s+%s" % (name, key_hash(name, public, alg).hex(), base64.b64encode(alg + public).decode())


def parse_verifier_key(text, alg=LOG_KEY):
    """(name, 32-byte public key) from a C2SP verifier key ``<name>+<hex key hash>+<base64(alg || key)>``:
    alg 0x01 for the log's key, 0x04 for a witness's (C2SP tlog-cosignature)."""
    kind = "witness key" if alg == WITNESS_KEY else "verifier key"
    parts = text.strip().split("+", 2)  # the name has no "+"; base64 may
    if len(parts) != 3 or not parts[0] or any(c.isspace() for c in parts[0]):
        raise Usage("not a C2SP %s (name+keyhash+base64): %r" % (kind, text))
    name, hash_hex, blob = parts
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        raise Usage("%s %r: the key is not base64" % (kind, text)) from None
    if len(raw) != 33 or raw[:1] != alg:
        raise Usage("%s %r: not an Ed25519 key (0x%02x followed by 32 bytes)" % (kind, text, alg[0]))
    if key_hash(name, raw[1:], alg).hex() != hash_hex.lower():
        raise Usage("%s %r: its key hash does not match its name and key" % (kind, text))
    return name, raw[1:]


def read_key_file(path):
    """Verifier keys from a file: one per line; blank lines and lines starting with # are ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise Usage("cannot read key file %s: %s" % (path, exc.strerror)) from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def open_checkpoint(note, keys):
    """Check the note's signatures against ``keys`` [(name, public)]; return (origin, size, root, key)."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n") or "\n\n" in text:
        raise Failed("checkpoint.txt is not a signed note")
    text += "\n"
    known = {(name, key_hash(name, public)): public for name, public in keys}
    signer = None
    for line in signatures[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Failed("checkpoint.txt has a malformed signature line")
        name, _, blob = line[2:].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise Failed("checkpoint.txt has a signature that is not base64") from None
        if base64.b64encode(raw).decode() != blob:
            raise Failed("checkpoint.txt has a signature in a non-canonical base64 spelling")
        public = known.get((name, raw[:4])) if len(raw) == 68 else None
        if public is None:
            continue  # a signature by a key not given is ignored (C2SP signed-note)
        if not ed25519_verify(public, text.encode(), raw[4:]):
            raise Failed("checkpoint signature by %s does not verify" % verifier_key(name, public))
        signer = signer or (name, public)
    if signer is None:
        return None
    body = text.split("\n")
    if len(body) != 4 or not re.fullmatch(r"0|[1-9][0-9]{0,18}", body[1]):
        raise Failed("checkpoint.txt does not hold a tlog-checkpoint body (origin, size, root)")
    try:
        root = base64.b64decode(body[2], validate=True)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise Failed("checkpoint root hash is not 32 bytes of base64")
    return body[0], int(body[1]), root, signer


COSIGNATURE_HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1


def check_cosignatures(note, witnesses, quorum):
    """At least ``quorum`` of the pinned witnesses cosigned the checkpoint (C2SP tlog-cosignature
    ``cosignature/v1``): {(name, public): timestamp}. A line whose name and key hash match a pinned witness but
    whose signature fails is a failure, not skipped; lines of other keys are ignored."""
    text, _, block = note.rpartition("\n\n")
    body = (text + "\n").encode()
    known = {(name, key_hash(name, public, WITNESS_KEY)): (name, public) for name, public in witnesses}
    found = {}  # type: dict
    for line in block[:-1].split("\n"):  # open_checkpoint has checked the block's form and base64
        name, _, blob = line[2:].partition(" ")
        raw = base64.b64decode(blob)
        witness = known.get((name, raw[:4]))
        if witness is None:
            continue
        shown = verifier_key(name, witness[1], WITNESS_KEY)
        timestamp = int.from_bytes(raw[4:12], "big")
        if len(raw) != 4 + 8 + 64 or not 0 < timestamp <= MAX_TIMESTAMP:
            raise Failed("the cosignature by witness %s is not a cosignature/v1 (4 + 8 + 64 bytes)" % shown)
        message = COSIGNATURE_HEADER + b"time %d\n" % timestamp + body
        if not ed25519_verify(witness[1], message, raw[12:]):
            raise Failed("the cosignature by witness %s does not verify" % shown)
        found.setdefault(witness, timestamp)
    if len(found) < quorum:
        names = ", ".join(verifier_key(n, p, WITNESS_KEY) for n, p in found) or "none"
        raise Failed(
            "%d of the required %d pinned witnesses cosigned the checkpoint (cosigned by: %s)"
            % (len(found), quorum, names)
        )
    return found


# --- Strict JSON ---------------------------------------------------------------------------------------
def _pairs(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise Failed("duplicate JSON member %r" % key)
        result[key] = value
    return result


def _constant(name):
    raise Failed("%s is not JSON" % name)


def strict_json(data, what):
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)
    except UnicodeDecodeError:
        raise Failed("%s is not UTF-8" % what) from None
    except ValueError as exc:
        raise Failed("%s is not valid JSON (%s)" % (what, exc)) from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# --- The archive ---------------------------------------------------------------------------------------
SEALING = ("manifest.json", "export.json", "proofs.jsonl", "checkpoint.txt")
VIEWS = (
    "data/decisions.jsonl",
    "data/explanations.jsonl",
    "data/decisions.parquet",
    "report/report.html",
    "report/report.pdf",
)
ASSETS = ("verify.py", "FORMAT.md")
KEYS = "keys.json"  # the deployment's public keys at export time: bound by the manifest, never a trust anchor
ROTATIONS = "rotations.jsonl"  # sealing, present when the ledger holds key rotations: pinned key -> signer
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_LAYOUT = re.compile(
    r"(?:%s)\Z|entries/(?:0|[1-9][0-9]{0,18})\.json\Z|models/%s@%s\.json\Z"
    % ("|".join(re.escape(n) for n in SEALING + VIEWS + ASSETS + (KEYS, ROTATIONS)), _NAME, _NAME)
)


def _unsafe(name):
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\"))
        or re.match(r"[A-Za-z]:", name) is not None
        or ".." in parts
        or "\\" in name
        or "\x00" in name
    )


class Archive:
    """A bundle opened after every archive-level check: members are then read by name, once each."""

    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile, ValueError, EOFError, struct.error) as exc:
            raise Failed("not a readable ZIP archive (%s)" % exc) from None
        try:
            self._check()
        except BaseException:
            self.zip.close()
            raise

    def _check(self):
        infos = self.zip.infolist()
        names = set()
        total = 0
        for info in infos:
            name = info.filename
            if name in names:
                raise Failed("duplicate member name %r: archive tools disagree on which copy they show" % name)
            names.add(name)
            if _unsafe(name) or info.orig_filename != name:
                raise Failed("member %r has an unsafe path (absolute, '..', backslash or drive)" % name)
            if not _LAYOUT.match(name):
                raise Failed("member %r is outside the bundle layout" % name)
            if info.flag_bits & 0x1:
                raise Failed("member %r is encrypted" % name)
            if info.flag_bits & 0x8:
                raise Failed("member %r uses a data descriptor (sizes after the data): not allowed" % name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Failed(
                    "member %r uses compression method %d (only stored or deflated)" % (name, info.compress_type)
                )
            mode = (info.external_attr >> 16) & 0o170000
            if mode not in (0, 0o100000):
                raise Failed("member %r is not a regular file (a link or special file)" % name)
            if info.file_size > MAX_MEMBER_BYTES:
                raise Failed(
                    "member %r declares %d bytes: over the %d limit" % (name, info.file_size, MAX_MEMBER_BYTES)
                )
            if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise Failed(
                    "member %r expands %d-fold: a zip bomb" % (name, info.file_size // max(info.compress_size, 1))
                )
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise Failed("members declare %d bytes in all: over the %d limit" % (total, MAX_TOTAL_BYTES))
        self._check_layout(sorted(infos, key=lambda i: i.header_offset))
        self.names = names

    def _check_layout(self, infos):
        """Members are contiguous from byte 0, then the central directory, then the end record and nothing
        else: no prepended, hidden or appended data for another tool to find."""
        with open(self.path, "rb") as handle:
            end = 0
            for info in infos:
                if info.header_offset != end:
                    raise Failed("bytes outside any member before %r" % info.filename)
                handle.seek(info.header_offset)
                header = handle.read(30)
                if len(header) != 30 or header[:4] != b"PK\x03\x04":
                    raise Failed("member %r has no local header" % info.filename)
                name_len, extra_len = struct.unpack("<HH", header[26:30])
                if handle.read(name_len) != info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
                    raise Failed("member %r has a different name in its local header" % info.filename)
                end = info.header_offset + 30 + name_len + extra_len + info.compress_size
            if end != self.zip.start_dir:
                raise Failed("bytes outside any member before the central directory")
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 22))
            record = handle.read(22)
            if len(record) != 22 or record[:4] != b"PK\x05\x06" or record[20:22] != b"\x00\x00":
                raise Failed("the archive does not end with its end-of-central-directory record")
            cd_size, cd_offset = struct.unpack("<II", record[12:20])
            tail = size - 22
            handle.seek(max(0, tail - 20))
            locator = handle.read(20)
            if locator[:4] == b"PK\x06\x07":  # ZIP64: its end record and locator precede the end record
                (record_at,) = struct.unpack("<Q", locator[8:16])
                handle.seek(record_at)
                record64 = handle.read(56)
                if record64[:4] != b"PK\x06\x06" or struct.unpack("<Q", record64[4:12])[0] != 44:
                    raise Failed("the archive's ZIP64 end record is malformed")
                cd_size, cd_offset = struct.unpack("<QQ", record64[40:56])
                if record_at + 56 != tail - 20:
                    raise Failed("bytes outside any member after the central directory")
                tail = record_at
            if cd_offset != self.zip.start_dir or cd_offset + cd_size != tail:
                raise Failed("bytes outside any member around the central directory")

    def has(self, name):
        return name in self.names

    def read(self, name):
        if name not in self.names:
            raise Failed("%s is missing" % name)
        try:
            return self.zip.read(name)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            ValueError,
            RuntimeError,
            NotImplementedError,
        ) as exc:
            raise Failed("member %s cannot be read (%s)" % (name, exc)) from None

    def close(self):
        self.zip.close()


# --- The checks ----------------------------------------------------------------------------------------
_ENTRY_KEYS = {"index", "payload", "recorded_at", "type"}


def parse_entry(data, index, what):
    """An entry's stored bytes: RFC 8785 JSON whose first member is its index."""
    match = re.match(rb'\{"index":(0|[1-9][0-9]*),', data)
    if not match or int(match.group(1)) != index:
        raise Failed("%s: its bytes do not carry index %d" % (what, index))
    entry = strict_json(data, what)
    if set(entry) != _ENTRY_KEYS or not isinstance(entry["payload"], dict) or not isinstance(entry["type"], str):
        raise Failed("%s is not a ledger entry (index, payload, recorded_at, type)" % what)
    return entry


ROTATION_TYPE = "key.rotated"
ROTATION_CONTEXT = b"rationale key rotation v1\n"
_ROTATION_KEYS = {"version", "previous", "next", "signature"}


def _rotation_key(text, index):
    """A verifier key named in rotation ``index``, which must be spelled exactly as verifier_key spells it."""
    try:
        key = parse_verifier_key(text) if isinstance(text, str) else None
    except Usage:
        key = None
    if key is None or verifier_key(*key) != text:
        raise Failed("key rotation entry %d: %r is not a verifier key in its canonical spelling" % (index, text))
    return key


def read_rotations(archive):
    """The key.rotated entries of rotations.jsonl, each well formed and validly signed by its outgoing key.

    Whether they belong to the checkpoint's tree is checked once the checkpoint is open (check_rotations)."""
    if not archive.has(ROTATIONS):
        return []
    lines = archive.read(ROTATIONS).split(b"\n")
    if lines[-1] != b"" or len(lines) == 1:
        raise Failed("rotations.jsonl is empty or does not end with a newline")
    rotations = []  # type: list[dict]
    for line in lines[:-1]:
        item = strict_json(line, ROTATIONS)
        if (
            not isinstance(item, dict)
            or set(item) != {"index", "entry", "proof"}
            or not _is_int(item["index"])
            or not isinstance(item["entry"], str)
            or not isinstance(item["proof"], list)
        ):
            raise Failed("rotations.jsonl holds a malformed line")
        index = item["index"]
        canonical = {"index": index, "entry": item["entry"], "proof": item["proof"]}
        if line != json.dumps(canonical, separators=(",", ":")).encode():
            raise Failed("rotations.jsonl line for entry %d is not in its one compact form" % index)
        if rotations and index <= rotations[-1]["index"]:
            raise Failed("rotations.jsonl lines are not in strictly increasing index order")
        if not all(isinstance(h, str) and re.fullmatch("[0-9a-f]{64}", h) for h in item["proof"]):
            raise Failed("key rotation entry %d: proof is not a list of lowercase hex SHA-256 hashes" % index)
        data = item["entry"].encode("utf-8")
        entry = parse_entry(data, index, "key rotation entry %d" % index)
        payload = entry["payload"]
        if entry["type"] != ROTATION_TYPE or set(payload) != _ROTATION_KEYS or payload["version"] != 1:
            raise Failed("entry %d in rotations.jsonl is not a version 1 %s entry" % (index, ROTATION_TYPE))
        if not _is_int(payload["version"]) or not isinstance(payload["signature"], str):
            raise Failed("key rotation entry %d: version or signature is malformed" % index)
        previous, following = _rotation_key(payload["previous"], index), _rotation_key(payload["next"], index)
        try:
            signature = base64.b64decode(payload["signature"], validate=True)
        except ValueError:
            raise Failed("key rotation entry %d: the signature is not base64" % index) from None
        message = ROTATION_CONTEXT + ("%s\n%s\n" % (payload["previous"], payload["next"])).encode("ascii")
        if not ed25519_verify(previous[1], message, signature):
            raise Failed(
                "key rotation entry %d: the signature by the outgoing key %s does not verify"
                % (index, payload["previous"])
            )
        rotations.append(
            {
                "index": index,
                "leaf": leaf_hash(data),
                "proof": [bytes.fromhex(h) for h in item["proof"]],
                "previous": previous,
                "next": following,
            }
        )
    return rotations


def follow_rotations(anchors, rotations):
    """Each key a verifier accepts: {(name, public): (smallest tree size it may sign, rotation indices that
    reached it)}. Anchors sign any size; a rotation extends the set only from a key it already holds, and a key
    introduced by the rotation at index r signs trees of size r + 1 and more (they commit to that entry)."""
    reach = {key: (0, ()) for key in anchors}  # type: dict
    for rotation in rotations:
        held = reach.get(rotation["previous"])
        if held is None or held[0] > rotation["index"] or rotation["next"] in reach:
            continue
        reach[rotation["next"]] = (rotation["index"] + 1, held[1] + (rotation["index"],))
    return reach


def check_rotations(rotations, size, root):
    """Every rotation the bundle carries is an entry of the checkpoint's tree."""
    for rotation in rotations:
        index = rotation["index"]
        if not inclusion_ok(rotation["leaf"], index, size, rotation["proof"], root):
            raise Failed("key rotation entry %d: inclusion proof does not lead to the checkpoint root" % index)


def check_signature(archive, pinned, rotations=()):
    """The checkpoint, signed by a pinned key (anchored) or only by a key of keys.json (not anchored), or by a
    key those hand over to through the key rotations; returns (origin, size, root, signer), anchored and the
    indices of the rotations that reached the signer."""
    note = archive.read("checkpoint.txt").decode("utf-8", "replace")
    keys_doc = strict_json(archive.read("keys.json"), "keys.json")
    carried = []
    for key in keys_doc.get("keys", []) if isinstance(keys_doc, dict) else []:
        try:
            public = base64.b64decode(key["public_key"], validate=True)
            carried.append((str(key["name"]), public))
        except (KeyError, TypeError, ValueError):
            raise Failed("keys.json holds a malformed key") from None
    reach = follow_rotations(pinned or carried, rotations)
    opened = open_checkpoint(note, list(reach))
    if opened is None and pinned:
        offered = ", ".join(verifier_key(n, p) for n, p in carried) or "none"
        raise Failed(
            "checkpoint is not signed by a pinned key (%s) or a key the rotations hand over to; the bundle's "
            "keys.json offers: %s" % (", ".join(verifier_key(n, p) for n, p in pinned), offered)
        )
    if opened is None:
        raise Failed("checkpoint is not signed by any key in keys.json")
    size = opened[1]
    opened = open_checkpoint(note, [key for key, (first, _) in reach.items() if first <= size])
    if opened is None:
        raise Failed(
            "checkpoint of tree size %d is signed only by a key introduced at or after entry %d: a key signs "
            "only trees that hold the rotation introducing it" % (size, size)
        )
    return opened, bool(pinned), reach[opened[3]][1]


def check_export(archive, size, root):
    data = archive.read("export.json")
    match = re.match(rb'\{"index":(0|[1-9][0-9]*),', data)
    if not match:
        raise Failed("export.json is not a ledger entry")
    index = int(match.group(1))
    entry = parse_entry(data, index, "export.json")
    payload = entry["payload"]
    if entry["type"] != EXPORT_TYPE or payload.get("version") != EXPORT_VERSION:
        raise Failed("export.json is not a version %d %s entry" % (EXPORT_VERSION, EXPORT_TYPE))
    for name, kind in (("export_id", str), ("filter", dict), ("decisions", list), ("models", list)):
        if not isinstance(payload.get(name), kind):
            raise Failed("export entry: %s is missing or malformed" % name)
    if not _is_int(payload.get("tree_size")) or not isinstance(payload.get("manifest_sha256"), str):
        raise Failed("export entry: tree_size or manifest_sha256 is missing or malformed")
    if not payload["tree_size"] <= index < size:
        raise Failed("export entry %d is not after the tree size %d it exported" % (index, payload["tree_size"]))
    return index, entry, data


def check_manifest(archive, export):
    data = archive.read("manifest.json")
    payload = export["payload"]
    if hashlib.sha256(data).hexdigest() != payload["manifest_sha256"]:
        raise Failed("manifest.json is not the manifest the export entry committed to (SHA-256 differs)")
    manifest = strict_json(data, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Failed("manifest.json is not format %s" % FORMAT)
    for name in ("export_id", "filter", "tree_size"):
        if manifest.get(name) != payload[name]:
            raise Failed("manifest.json %s differs from the export entry's" % name)
    indices, files = manifest.get("indices"), manifest.get("files")
    if not isinstance(indices, list) or not all(_is_int(i) for i in indices) or not isinstance(files, dict):
        raise Failed("manifest.json indices or files are malformed")
    if any(indices[n] <= indices[n - 1] for n in range(1, len(indices))) or (indices and indices[0] < 0):
        raise Failed("manifest.json indices are not strictly increasing")
    if indices and indices[-1] >= payload["tree_size"]:
        raise Failed("manifest.json lists an entry at or after the exported tree size")
    for name, meta in files.items():
        if name in SEALING or name == ROTATIONS or not isinstance(meta, dict) or set(meta) != {"sha256", "size"}:
            raise Failed("manifest.json lists %r wrongly" % name)
    return manifest


def expected_indices(payload):
    """Every entry index the export entry says the bundle holds, and the role of each."""
    roles = {}

    def claim(index, role):
        if not _is_int(index) or index in roles:
            raise Failed("export entry lists entry %r twice or malformed" % (index,))
        roles[index] = role

    for index in payload["models"]:
        claim(index, ("model", None))
    seen = set()
    for item in payload["decisions"]:
        if not isinstance(item, dict) or set(item) != {"decision_id", "index", "explanations", "outcomes"}:
            raise Failed("export entry: a decision item is malformed")
        if item["decision_id"] in seen or not isinstance(item["decision_id"], str):
            raise Failed("export entry lists decision %r twice or malformed" % (item["decision_id"],))
        seen.add(item["decision_id"])
        claim(item["index"], ("decision", item["decision_id"]))
        for kind in ("explanations", "outcomes"):
            if not isinstance(item[kind], list):
                raise Failed("export entry: %s of %s malformed" % (kind, item["decision_id"]))
            for index in item[kind]:
                claim(index, (kind[:-1], item["decision_id"]))
    return roles


def check_members(archive, manifest, roles):
    """The archive holds exactly the layout the entries imply, and each member matches the manifest."""
    if sorted(roles) != manifest["indices"]:
        missing = sorted(set(roles) - set(manifest["indices"]))
        raise Failed(
            "the bundle's entries are not what the export entry says the filter matched%s"
            % (" (entries %s left out)" % missing[:5] if missing else "")
        )
    expected = set(VIEWS + ASSETS + (KEYS,)) | {"entries/%d.json" % i for i in roles}
    listed = set(manifest["files"])
    models = {n for n in listed if n.startswith("models/")}
    if listed - models != expected:
        extra = sorted((listed - models) ^ expected)
        raise Failed("manifest.json files differ from the bundle layout at %s" % extra[0])
    actual = archive.names - set(SEALING) - {ROTATIONS}
    if actual != listed:
        name = sorted(actual ^ listed)[0]
        raise Failed("file %s is %s" % (name, "not listed in manifest.json" if name in actual else "missing"))
    for name in SEALING:
        if not archive.has(name):
            raise Failed("%s is missing" % name)
    contents = {}
    for name in sorted(listed):
        data = archive.read(name)
        meta = manifest["files"][name]
        if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise Failed("file %s does not match its SHA-256 in manifest.json (edited)" % name)
        if name.startswith(("entries/", "models/")):
            contents[name] = data
    return contents, len(listed)


def check_proofs(archive, manifest, export_index, export_bytes, contents, size, root):
    wanted = manifest["indices"] + [export_index]
    lines = archive.read("proofs.jsonl").split(b"\n")
    if lines[-1] != b"":
        raise Failed("proofs.jsonl does not end with a newline")
    items = [strict_json(line, "proofs.jsonl") for line in lines[:-1]]
    got = [item.get("index") if isinstance(item, dict) else None for item in items]
    if got != wanted:
        raise Failed(
            "proofs.jsonl does not hold exactly one line per entry in index order (a line is duplicated, "
            "missing, extra or out of order)"
        )
    entries = {}
    for number, item in enumerate(items):
        line, index = lines[number], item["index"]
        if set(item) != {"index", "leaf_hash", "proof"} or not isinstance(item["proof"], list):
            raise Failed("proofs.jsonl line for entry %d is malformed" % index)
        canonical = {"index": index, "leaf_hash": item["leaf_hash"], "proof": item["proof"]}
        if line != json.dumps(canonical, separators=(",", ":")).encode():
            raise Failed("proofs.jsonl line for entry %d is not in its one compact form" % index)
        data = export_bytes if index == export_index else contents["entries/%d.json" % index]
        leaf = leaf_hash(data)
        if leaf.hex() != item["leaf_hash"]:
            raise Failed("entry %d: bytes do not hash to the listed leaf hash" % index)
        if not all(isinstance(h, str) and re.fullmatch("[0-9a-f]{64}", h) for h in item["proof"]):
            raise Failed("entry %d: proof is not a list of lowercase hex SHA-256 hashes" % index)
        proof = [bytes.fromhex(h) for h in item["proof"]]
        if not inclusion_ok(leaf, index, size, proof, root):
            raise Failed("entry %d: inclusion proof does not lead to the checkpoint root" % index)
        if index != export_index:
            entries[index] = parse_entry(data, index, "entries/%d.json" % index)
    return entries


_ROLE_TYPES = {
    "model": ("model.registered",),
    "decision": ("decision.recorded",),
    "explanation": ("explanation.recorded", "explanation.failed"),
    "outcome": ("outcome.recorded",),
}


def check_completeness(payload, roles, entries):
    """Each entry is what the export entry says it is, and each decision matches the filter."""
    refs = set()
    for index, (role, decision_id) in sorted(roles.items()):
        entry = entries[index]
        if entry["type"] not in _ROLE_TYPES[role]:
            raise Failed("entry %d is a %s entry, not the %s the export entry lists" % (index, entry["type"], role))
        if role == "model":
            refs.add(entry["payload"].get("model"))
        elif entry["payload"].get("decision_id") != decision_id:
            raise Failed("entry %d does not belong to decision %s as the export entry says" % (index, decision_id))
    flt = payload["filter"]
    for item in payload["decisions"]:
        decision = entries[item["index"]]["payload"]
        outcomes = [entries[i]["payload"].get("outcome") or {} for i in item["outcomes"]]
        if decision.get("model") not in refs:
            raise Failed("decision %s: its model's registration entry is not in the bundle" % item["decision_id"])
        if not matches(flt, decision, outcomes):
            raise Failed("decision %s does not match the export filter" % item["decision_id"])
    return refs


def matches(flt, decision, outcomes):
    """The export filter (FORMAT.md): every given condition holds."""
    model = flt.get("model")
    if model is not None and decision.get("model") != model and decision.get("model", "").split("@")[0] != model:
        return False
    if flt.get("subject_refs") is not None and decision.get("subject_ref") not in flt["subject_refs"]:
        return False
    if flt.get("decision_ids") is not None and decision.get("decision_id") not in flt["decision_ids"]:
        return False
    occurred = decision.get("occurred_at") or ""
    if flt.get("since") is not None and not occurred >= flt["since"]:
        return False
    if flt.get("until") is not None and not occurred < flt["until"]:
        return False
    return flt.get("outcome") is None or any(o.get("label") == flt["outcome"] for o in outcomes)


def check_views(archive, manifest, payload, entries, contents):
    """Every view equals the one regenerated from the verified entries."""
    export = ExportView.from_entries(manifest, payload, entries)
    expected_cards = {card_name(e["payload"]["model"]) for e in export.models}
    cards = {n for n in manifest["files"] if n.startswith("models/")}
    if cards != expected_cards:
        raise Failed("model cards differ from the model entries at %s" % sorted(cards ^ expected_cards)[0])
    for model in export.models:
        name = card_name(model["payload"]["model"])
        if contents[name] != render_card(model):
            raise Failed("%s is not the card of entry %d" % (name, model["index"]))
    for name, digest in sorted(view_digests(export).items()):
        if digest != manifest["files"][name]["sha256"]:
            raise Failed("%s is not the view the entries give (regenerated, it differs)" % name)
    return len(VIEWS) + len(cards)


def verify(path, keys=(), out=print, witnesses=(), quorum=None):
    """Run every check; print one line per check and a verdict; return the exit status.

    ``witnesses`` are pinned witness keys; ``quorum`` (default: all of them) must have cosigned the checkpoint."""
    try:
        pinned = [parse_verifier_key(k) for k in keys]
        witness_keys = list(dict.fromkeys(parse_verifier_key(k, WITNESS_KEY) for k in witnesses))
        quorum = len(witness_keys) if quorum is None else quorum
        if not 0 <= quorum <= len(witness_keys):
            raise Usage("a quorum of %d needs as many --witness-key, %d given" % (quorum, len(witness_keys)))
    except Usage as exc:
        out("usage: %s" % exc)
        return EXIT_USAGE
    archive = None
    try:
        archive = Archive(path)
        out(
            "ok  archive: %d members, no duplicate, unsafe or unexpected name, nothing outside them"
            % len(archive.names)
        )
        rotations = read_rotations(archive)
        (origin, size, root, signer), anchored, chain = check_signature(archive, pinned, rotations)
        how = "a pinned key" if anchored else "a key the bundle carries (keys.json), NOT a pinned key"
        if chain:
            start = next(r["previous"] for r in rotations if r["index"] == chain[0])
            how = "reached from %s through the key rotations at entries %s" % (
                ("the pinned key %s" if anchored else "%s, a key the bundle carries (keys.json), NOT a pinned key")
                % verifier_key(*start),
                ", ".join(str(i) for i in chain),
            )
        out("ok  checkpoint: %s, tree size %d, root %s" % (origin, size, root.hex()))
        out("ok  signature: Ed25519 by %s, %s" % (verifier_key(*signer), how))
        check_rotations(rotations, size, root)
        if rotations:
            out("ok  key rotations: %d key.rotated entries hash to leaves included in the checkpoint" % len(rotations))
        if quorum:
            cosigned = check_cosignatures(archive.read("checkpoint.txt").decode("utf-8"), witness_keys, quorum)
            out(
                "ok  witnesses: %d of the required %d pinned witnesses cosigned the checkpoint: %s"
                % (len(cosigned), quorum, ", ".join(verifier_key(n, p, WITNESS_KEY) for n, p in cosigned))
            )
        export_index, export, export_bytes = check_export(archive, size, root)
        manifest = check_manifest(archive, export)
        if manifest.get("origin") != origin:
            raise Failed("manifest.json origin differs from the checkpoint's")
        roles = expected_indices(export["payload"])
        contents, count = check_members(archive, manifest, roles)
        out("ok  manifest: bound by export entry %d; %d files match it, none missing or extra" % (export_index, count))
        entries = check_proofs(archive, manifest, export_index, export_bytes, contents, size, root)
        out("ok  entries: export entry and %d entries hash to leaves included in the checkpoint" % len(entries))
        check_completeness(export["payload"], roles, entries)
        out(
            "ok  completeness: %d decisions, exactly what the filter matched at tree size %d, with their "
            "explanations and outcomes" % (len(export["payload"]["decisions"]), manifest["tree_size"])
        )
        views = check_views(archive, manifest, export["payload"], entries, contents)
        out("ok  views: %d views regenerated from the entries match byte for byte" % views)
    except Failed as failure:
        out("FAILED  %s" % failure)
        return EXIT_FAILED
    except RecursionError:
        out("FAILED  the bundle is malformed (nested too deeply)")
        return EXIT_FAILED
    except Exception as exc:  # fail closed: whatever a bundle holds, the answer is never a traceback
        out("FAILED  the bundle is malformed (%s: %s)" % (type(exc).__name__, exc))
        return EXIT_FAILED
    finally:
        if archive is not None:
            archive.close()
    if not anchored:
        out(
            "NOT VERIFIED  signature valid, key not anchored: checked only against keys the bundle carries; "
            "pin the deployment's verifier key with --key"
        )
        return EXIT_UNANCHORED
    out("bundle verified")
    return EXIT_VERIFIED


# --- The views: one definition, used by the exporter to write them and by the verifier to check them -----
class ExportView:
    """What the views are made of: the export's header, its model entries and its decisions in order."""

    def __init__(self, header, models, decisions):
        self.header = header  # origin, export_id, created_at, filter, tree_size, decision_count
        self.models = models  # model.registered entries (parsed), in index order
        self.decisions = decisions  # iterable of (decision entry, [explanation entries], [outcome entries])

    @classmethod
    def from_entries(cls, manifest, payload, entries):
        header = header_of(manifest, len(payload["decisions"]))
        models = [entries[i] for i in sorted(payload["models"])]
        decisions = [
            (
                entries[item["index"]],
                [entries[i] for i in item["explanations"]],
                [entries[i] for i in item["outcomes"]],
            )
            for item in payload["decisions"]
        ]
        return cls(header, models, decisions)


def header_of(manifest, decision_count):
    header = {k: manifest[k] for k in ("origin", "export_id", "created_at", "filter", "tree_size")}
    header["decision_count"] = decision_count
    return header


def card_name(model_ref):
    return "models/%s.json" % model_ref


def render_card(entry):
    card = dict(entry["payload"])
    card["ledger_index"] = entry["index"]
    card["registered_at"] = entry["recorded_at"]
    return json.dumps(card, indent=2, sort_keys=True).encode() + b"\n"


def _line(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"


class Views:
    """Streams every view at once from one pass over the decisions; ``sinks`` maps a view name to an object
    with ``write(bytes)`` (a file for the exporter, a hash for the verifier)."""

    def __init__(self, header, models, sinks):
        self.header, self.models, self.sinks = header, models, sinks
        self.parquet = ParquetWriter(sinks["data/decisions.parquet"], PARQUET_COLUMNS)
        self.pdf_pages = []
        self.count = 0
        sinks["report/report.html"].write(html_head(header, models))

    def add(self, decision, explanations, outcomes):
        payload = decision["payload"]
        self.sinks["data/decisions.jsonl"].write(
            _line({"decision_id": payload["decision_id"], "ledger_index": decision["index"], "payload": payload})
        )
        for e in explanations:
            self.sinks["data/explanations.jsonl"].write(
                _line(
                    {
                        "explanation_id": e["payload"].get("explanation_id"),
                        "ledger_index": e["index"],
                        "payload": e["payload"],
                    }
                )
            )
        outcome = outcomes[-1]["payload"].get("outcome") if outcomes else None
        self.parquet.add(parquet_row(decision, outcome))
        page = decision_page(decision, explanations, outcomes, self.models)
        self.sinks["report/report.html"].write(html_decision(page, self.count < MAX_HTML_CHARTS))
        if len(self.pdf_pages) < MAX_PDF_DECISIONS:
            self.pdf_pages.append(page)
        self.count += 1

    def close(self):
        self.parquet.close()
        self.sinks["report/report.html"].write(b"</body></html>\n")
        self.sinks["report/report.pdf"].write(render_pdf(self.header, self.models, self.pdf_pages))


class _Hash:
    def __init__(self):
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)


def view_digests(export):
    """{view name: SHA-256 hex} of every view in VIEWS, regenerated from ``export``."""
    sinks = {name: _Hash() for name in VIEWS}
    views = Views(export.header, export.models, sinks)
    for decision, explanations, outcomes in export.decisions:
        views.add(decision, explanations, outcomes)
    views.close()
    return {name: sink.digest.hexdigest() for name, sink in sinks.items()}


def render_members(files):
    """Regenerate every view and model card of a bundle given as {name: bytes} (for re-implementers and
    tests: what the exporter would have written for these entries)."""
    manifest = json.loads(files["manifest.json"])
    payload = json.loads(files["export.json"])["payload"]
    entries = {
        i: json.loads(files["entries/%d.json" % i]) for i in manifest["indices"] if "entries/%d.json" % i in files
    }
    payload = dict(payload)
    payload["decisions"] = [d for d in payload["decisions"] if d["index"] in entries]
    for d in payload["decisions"]:
        d["explanations"] = [i for i in d["explanations"] if i in entries]
        d["outcomes"] = [i for i in d["outcomes"] if i in entries]
    export = ExportView.from_entries(manifest, payload, entries)
    out = {card_name(m["payload"]["model"]): render_card(m) for m in export.models}
    buffers = {name: _Buffer() for name in VIEWS}
    views = Views(export.header, export.models, buffers)
    for decision, explanations, outcomes in export.decisions:
        views.add(decision, explanations, outcomes)
    views.close()
    out.update({name: bytes(b.data) for name, b in buffers.items()})
    return out


class _Buffer:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data


# --- Plain-language reasons (the wording of the reviewer pages, from the entries alone) -------------------
TEMPLATES = {
    "reason_first": "{feature} of {value} {direction} the score for {target} the most.",
    "reason": "{feature} of {value} {direction} the score for {target}.",
    "raised": "raised",
    "lowered": "lowered",
    "anchor": "The decision holds whenever {rule} (precision {precision:.0%}, coverage {coverage:.0%}).",
    "counterfactual": "Had {changes}, the outcome would have been {outcome}.",
    "change": "{feature} been {to} instead of {from_}",
    "no_counterfactual": "No small change to the inputs that the model would decide differently was found.",
}


def format_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return ("%.2f" % value).rstrip("0").rstrip(".") if value != int(value) else "%d" % int(value)
    return str(value)


def _result(explanations, kind, method=None):
    for e in explanations:
        p = e["payload"]
        result = p.get("result") if isinstance(p.get("result"), dict) else p
        if e["type"] == "explanation.recorded" and result.get("kind") == kind and method in (None, p.get("method")):
            return p, result
    return None, None


def decision_page(decision, explanations, outcomes, models):
    """Everything the HTML and PDF show for one decision, derived from its entries."""
    payload = decision["payload"]
    manifest = {}  # type: dict
    for m in models:
        if m["payload"].get("model") == payload.get("model"):
            manifest = m["payload"].get("manifest") or {}
    names = {}
    for f in manifest.get("features") or []:
        names[f.get("name")] = f.get("label") or str(f.get("name")).replace("_", " ")
    t = dict(TEMPLATES)
    t.update(manifest.get("templates") or {})
    attribution, values = _result(explanations, "attributions", "shap")
    if attribution is None:
        attribution, values = _result(explanations, "attributions")
    reasons = []
    inputs = payload.get("inputs") or {}
    try:
        if values is not None:
            ranked = sorted(values["values"].items(), key=lambda kv: -abs(kv[1]))[:3]
            for rank, (feature, contribution) in enumerate(ranked):
                if contribution == 0:
                    continue
                label = names.get(feature, feature)
                reasons.append(
                    t["reason_first" if rank == 0 else "reason"].format(
                        feature=label[:1].upper() + label[1:],
                        value=format_value(inputs.get(feature)),
                        direction=t["raised"] if contribution > 0 else t["lowered"],
                        target=attribution.get("target"),
                    )
                )
        _, anchor = _result(explanations, "anchor")
        if anchor is not None:
            reasons.append(
                t["anchor"].format(rule=anchor["rule"], precision=anchor["precision"], coverage=anchor["coverage"])
            )
        _, cfs = _result(explanations, "counterfactuals")
        if cfs is not None:
            if cfs["items"]:
                parts = [
                    t["change"].format(
                        feature=names.get(c["feature"], c["feature"]),
                        to=format_value(c["to"]),
                        from_=format_value(c["from"]),
                    )
                    for c in cfs["items"][0]["changes"]
                ]
                changes = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
                reasons.append(t["counterfactual"].format(changes=changes, outcome=cfs["desired"]))
            else:
                reasons.append(t["no_counterfactual"])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        reasons.append("(the explanations of this decision could not be put into words)")
    chart = None
    if values is not None and isinstance(values.get("values"), dict):
        items = sorted(values["values"].items(), key=lambda kv: abs(kv[1]))[-10:]
        chart = ("%s attributions" % attribution.get("backend", attribution.get("method")), items)
    return {
        "decision": payload,
        "index": decision["index"],
        "outcome": outcomes[-1]["payload"].get("outcome") if outcomes else None,
        "reasons": reasons,
        "chart": chart,
        "failed": [
            (e["payload"].get("method"), e["payload"].get("error"))
            for e in explanations
            if e["type"] == "explanation.failed"
        ],
        "explanations": [(e["payload"].get("method"), e["index"]) for e in explanations],
    }


# --- HTML ------------------------------------------------------------------------------------------------
def _e(value):
    return html.escape(str(value))


def html_head(header, models):
    count = header["decision_count"]
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Rationale decision export</title><style>",
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "section{page-break-before:always;margin-top:2em}code{font-size:85%}",
        "</style></head><body><h1>Rationale decision export</h1>",
        "<p>Deployment <code>%s</code>, export <code>%s</code>, made %s; filter <code>%s</code>; %d decisions "
        "recorded before ledger entry %d.</p>"
        % (
            _e(header["origin"]),
            _e(header["export_id"]),
            _e(header["created_at"]),
            _e(json.dumps(header["filter"], sort_keys=True)),
            count,
            header["tree_size"],
        ),
        "<h2>How to check this bundle</h2><p>Every entry, this report and every other file in the bundle are "
        "bound by the export entry (<code>export.json</code>) and its inclusion proof to the signed checkpoint "
        "(<code>checkpoint.txt</code>). Run <code>python3 -I -S verify.py --key VERIFIER_KEY bundle.zip</code> "
        "with the deployment's verifier key obtained from the deployment itself (not from this bundle), and a "
        "copy of <code>verify.py</code> whose SHA-256 you compared with the one the deployment publishes, or "
        "re-implement it from <code>FORMAT.md</code>. It regenerates this report from the entries and compares "
        "it byte for byte.</p><h2>Models</h2>",
    ]
    for m in models:
        p = m["payload"]
        out.append(
            "<h3>%s</h3><p>artifact SHA-256 <code>%s</code>, registered %s (ledger index %d)</p>"
            "<table><tr><th>feature</th><th>type</th><th>allowed</th></tr>"
            % (_e(p.get("model")), _e(p.get("artifact_sha256")), _e(m["recorded_at"]), m["index"])
        )
        for f in (p.get("manifest") or {}).get("features") or []:
            allowed = f.get("categories") or [f.get("minimum"), f.get("maximum")]
            out.append(
                "<tr><td>%s</td><td>%s</td><td>%s</td></tr>" % (_e(f.get("name")), _e(f.get("type")), _e(allowed))
            )
        out.append("</table>")
    if count > MAX_HTML_CHARTS:
        out.append(
            "<p>Attribution charts are drawn for the first %d decisions; every attribution is in "
            "data/explanations.jsonl.</p>" % MAX_HTML_CHARTS
        )
    return "".join(out).encode("utf-8")


def svg_chart(title, items):
    """A horizontal bar chart as inline SVG: positive bars right of the axis, negative left."""
    width, row, label_w = 560, 18, 200
    scale = max([abs(v) for _, v in items] + [1e-12])
    half = (width - label_w - 20) / 2
    axis = label_w + 10 + half
    out = [
        "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img' aria-label='%s'>"
        % (width, row * len(items) + 28, _e(title)),
        "<text x='%d' y='14' font-size='12' text-anchor='middle'>%s</text>" % (width // 2, _e(title)),
    ]
    for n, (name, value) in enumerate(reversed(items)):
        y = 22 + n * row
        length = abs(value) / scale * half
        x = axis if value >= 0 else axis - length
        out.append(
            "<text x='%d' y='%d' font-size='11' text-anchor='end'>%s</text><rect x='%.1f' y='%d' width='%.1f' "
            "height='%d' fill='%s'><title>%s</title></rect>"
            % (
                label_w,
                y + 12,
                _e(name),
                x,
                y + 2,
                length,
                row - 4,
                "#2a9d8f" if value >= 0 else "#e76f51",
                _e(repr(value)),
            )
        )
    out.append("<line x1='%.1f' x2='%.1f' y1='20' y2='%d' stroke='#444'/></svg>" % (axis, axis, 22 + row * len(items)))
    return "".join(out)


def html_decision(page, chart):
    d = page["decision"]
    out = [
        "<section><h2>Decision %s</h2>" % _e(d.get("decision_id")),
        "<p>Model %s, occurred %s, subject %s. Output <b>%s</b>.</p>"
        % (
            _e(d.get("model")),
            _e(d.get("occurred_at")),
            _e(d.get("subject_ref")),
            _e(json.dumps(d.get("output"), sort_keys=True)),
        ),
    ]
    if page["outcome"]:
        out.append("<p>Real outcome: %s</p>" % _e(json.dumps(page["outcome"], sort_keys=True)))
    out.append("<table><tr><th>input</th><th>value</th></tr>")
    for k, v in (d.get("inputs") or {}).items():
        out.append("<tr><td>%s</td><td>%s</td></tr>" % (_e(k), _e(json.dumps(v))))
    out.append("</table>")
    if page["reasons"]:
        out.append("<h3>Why</h3><ul>%s</ul>" % "".join("<li>%s</li>" % _e(s) for s in page["reasons"]))
    if page["chart"] and chart:
        out.append(svg_chart(*page["chart"]))
    for method, error in page["failed"]:
        out.append("<p>%s explanation failed: %s</p>" % (_e(method), _e(error)))
    refs = ", ".join("%s (entry %d)" % (_e(m), i) for m, i in page["explanations"])
    out.append(
        "<p><small>Ledger index %d%s.</small></p></section>" % (page["index"], "; explanations " + refs if refs else "")
    )
    return "".join(out).encode("utf-8")


# --- PDF (uncompressed, Type 1 base fonts, so that any Python writes the same bytes) ----------------------
def _pdf_text(value):
    data = str(value).encode("cp1252", "replace")
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _wrap(text, width):
    lines, line = [], ""
    for word in str(text).split(" "):
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + " " + word) if line else word
    lines.append(line)
    return lines


class _PdfPages:
    W, H, M = 595, 842, 50

    def __init__(self):
        self.pages = []
        self.ops = []  # type: list
        self.y = 0

    def new_page(self):
        self.ops = []
        self.pages.append(self.ops)
        self.y = self.H - self.M

    def room(self, height):
        if not self.pages or self.y - height < self.M:
            self.new_page()

    def text(self, text, font=b"F1", size=10, width=95):
        for line in _wrap(text, width):
            self.room(size + 4)
            self.y -= size + 4
            self.ops.append(b"BT /%s %d Tf %d %d Td %s Tj ET" % (font, size, self.M, self.y, _pdf_text(line)))

    def chart(self, title, items):
        height = 16 + 14 * len(items)
        self.room(height + 6)
        self.text(title, b"F2", 10)
        scale = max([abs(v) for _, v in items] + [1e-12])
        half, axis = 140, self.M + 180 + 140
        for name, value in reversed(items):
            self.y -= 14
            length = abs(value) / scale * half
            x = axis if value >= 0 else axis - length
            color = b"0.16 0.62 0.56" if value >= 0 else b"0.91 0.44 0.32"
            self.ops.append(b"BT /F1 8 Tf %d %d Td %s Tj ET" % (self.M, self.y + 2, _pdf_text(str(name)[:40])))
            self.ops.append(b"%s rg %.1f %d %.1f 10 re f 0 g" % (color, x, self.y, length))
        self.ops.append(b"0.3 g %.1f %d 0.6 %d re f 0 g" % (axis, self.y, height - 16))
        self.y -= 6


def render_pdf(header, models, pages):
    doc = _PdfPages()
    doc.new_page()
    doc.text("Rationale decision export", b"F2", 18, 50)
    doc.text(
        "Deployment %s, export %s, made %s. %d decisions recorded before ledger entry %d; filter %s."
        % (
            header["origin"],
            header["export_id"],
            header["created_at"],
            header["decision_count"],
            header["tree_size"],
            json.dumps(header["filter"], sort_keys=True),
        )
    )
    doc.text("How to check this bundle", b"F2", 13)
    doc.text(
        "Every entry and every file of the bundle, this report included, is bound by the export entry "
        "(export.json) and its inclusion proof to the signed checkpoint (checkpoint.txt). Run "
        "python3 -I -S verify.py --key VERIFIER_KEY bundle.zip with the deployment's verifier key obtained "
        "from the deployment itself, not from the bundle, and a verify.py whose SHA-256 you compared with "
        "the one the deployment publishes (or re-implement it from FORMAT.md). It regenerates this report "
        "from the entries and compares it byte for byte."
    )
    if header["decision_count"] > len(pages):
        doc.text("This PDF shows the first %d decisions; all are in the HTML report and the JSONL data." % len(pages))
    for m in models:
        p = m["payload"]
        doc.text("Model %s" % p.get("model"), b"F2", 13)
        doc.text(
            "Artifact SHA-256 %s, registered %s (ledger index %d)"
            % (p.get("artifact_sha256"), m["recorded_at"], m["index"])
        )
        for f in (p.get("manifest") or {}).get("features") or []:
            allowed = f.get("categories") or [f.get("minimum"), f.get("maximum")]
            doc.text("  %s (%s): %s" % (f.get("name"), f.get("type"), json.dumps(allowed)), b"F3", 8, 100)
    for page in pages:
        d = page["decision"]
        doc.new_page()
        doc.text("Decision %s" % d.get("decision_id"), b"F2", 16, 55)
        doc.text("Model %s; occurred %s; subject %s" % (d.get("model"), d.get("occurred_at"), d.get("subject_ref")))
        doc.text("Output %s" % json.dumps(d.get("output"), sort_keys=True))
        if page["outcome"]:
            doc.text("Real outcome %s" % json.dumps(page["outcome"], sort_keys=True))
        doc.text("Inputs", b"F2", 12)
        for k, v in (d.get("inputs") or {}).items():
            doc.text("  %s: %s" % (k, json.dumps(v)), b"F3", 9, 90)
        if page["reasons"]:
            doc.text("Why", b"F2", 12)
            for sentence in page["reasons"]:
                doc.text("- " + sentence)
        if page["chart"]:
            doc.chart(*page["chart"])
        for method, error in page["failed"]:
            doc.text("%s explanation failed: %s" % (method, error))
        doc.text("Ledger index %d" % page["index"], b"F3", 8)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        None,  # the page tree, once the pages are numbered
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
        b"<< /Title (Rationale decision export) /Producer (Rationale verify.py) >>",
    ]
    kids = []
    for ops in doc.pages:
        stream = b"\n".join(ops) + b"\n"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R /F2 4 0 R "
            b"/F3 5 0 R >> >> /Contents %d 0 R >>" % (len(objects))
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- Parquet (format 1, PLAIN encoding, uncompressed, written with the Thrift compact protocol) -----------
PARQUET_COLUMNS = (  # name, physical type (2 INT64, 5 DOUBLE, 6 BYTE_ARRAY as UTF-8)
    ("decision_id", 6),
    ("model", 6),
    ("occurred_at", 6),
    ("subject_ref", 6),
    ("label", 6),
    ("value", 5),
    ("inputs", 6),
    ("output", 6),
    ("outcome", 6),
    ("ledger_index", 2),
)


def parquet_row(decision, outcome):
    d = decision["payload"]
    output = d.get("output") if isinstance(d.get("output"), dict) else {}
    value = output.get("value")
    label = output.get("label")
    return (
        d.get("decision_id"),
        d.get("model"),
        d.get("occurred_at"),
        d.get("subject_ref"),
        label if isinstance(label, str) else None,
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
        json.dumps(d.get("inputs"), sort_keys=True),
        json.dumps(d.get("output"), sort_keys=True),
        json.dumps(outcome, sort_keys=True) if outcome else None,
        decision["index"],
    )


def _varint(n):
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _zigzag(n):
    return _varint((n << 1) ^ (n >> 63))


class _Thrift:
    """Thrift compact protocol: a struct is a list of (field id, type, value); types as below."""

    I32, I64, BINARY, LIST, STRUCT = 5, 6, 8, 9, 12

    @classmethod
    def struct(cls, fields):
        out, last = bytearray(), 0
        for fid, kind, value in fields:
            if value is None:
                continue
            out += bytes([((fid - last) << 4) | kind]) if 0 < fid - last <= 15 else bytes([kind]) + _zigzag(fid)
            last = fid
            out += cls.value(kind, value)
        return bytes(out + b"\x00")

    @classmethod
    def value(cls, kind, value):
        if kind in (cls.I32, cls.I64):
            return _zigzag(value)
        if kind == cls.BINARY:
            data = value.encode() if isinstance(value, str) else value
            return _varint(len(data)) + data
        if kind == cls.STRUCT:
            return cls.struct(value)
        if kind == cls.LIST:
            elem, items = value
            head = bytes([(len(items) << 4) | elem]) if len(items) < 15 else bytes([0xF0 | elem]) + _varint(len(items))
            return head + b"".join(cls.value(elem, v) for v in items)
        raise ValueError(kind)


def _rle_levels(levels):
    """Definition levels (bit width 1) in the RLE/bit-packed hybrid, runs only, with a 4-byte length."""
    out, n = bytearray(), 0
    while n < len(levels):
        run = n
        while run < len(levels) and levels[run] == levels[n]:
            run += 1
        out += _varint((run - n) << 1) + bytes([levels[n]])
        n = run
    return struct.pack("<I", len(out)) + bytes(out)


class ParquetWriter:
    """Every column OPTIONAL; one data page per column per row group of PARQUET_ROW_GROUP rows."""

    def __init__(self, sink, columns):
        self.sink, self.columns = sink, columns
        self.offset = 4
        self.rows, self.groups, self.total = [], [], 0
        sink.write(b"PAR1")

    def add(self, row):
        self.rows.append(row)
        if len(self.rows) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self):
        if not self.rows:
            return
        chunks, group_bytes = [], 0
        for c, (name, kind) in enumerate(self.columns):
            values = [r[c] for r in self.rows]
            data = bytearray(_rle_levels([0 if v is None else 1 for v in values]))
            for v in values:
                if v is None:
                    continue
                if kind == 2:
                    data += struct.pack("<q", v)
                elif kind == 5:
                    data += struct.pack("<d", v)
                else:
                    raw = str(v).encode("utf-8")
                    data += struct.pack("<I", len(raw)) + raw
            header = _Thrift.struct(
                [
                    (1, _Thrift.I32, 0),  # DATA_PAGE
                    (2, _Thrift.I32, len(data)),
                    (3, _Thrift.I32, len(data)),
                    (
                        5,
                        _Thrift.STRUCT,
                        [(1, _Thrift.I32, len(values)), (2, _Thrift.I32, 0), (3, _Thrift.I32, 3), (4, _Thrift.I32, 3)],
                    ),
                ]
            )
            start = self.offset
            self.sink.write(header)
            self.sink.write(bytes(data))
            size = len(header) + len(data)
            self.offset += size
            group_bytes += size
            meta = [
                (1, _Thrift.I32, kind),
                (2, _Thrift.LIST, (_Thrift.I32, [0, 3])),  # PLAIN values, RLE levels
                (3, _Thrift.LIST, (_Thrift.BINARY, [name])),
                (4, _Thrift.I32, 0),  # UNCOMPRESSED
                (5, _Thrift.I64, len(values)),
                (6, _Thrift.I64, size),
                (7, _Thrift.I64, size),
                (9, _Thrift.I64, start),
            ]
            chunks.append([(2, _Thrift.I64, start), (3, _Thrift.STRUCT, meta)])
        self.groups.append(
            [
                (1, _Thrift.LIST, (_Thrift.STRUCT, chunks)),
                (2, _Thrift.I64, group_bytes),
                (3, _Thrift.I64, len(self.rows)),
            ]
        )
        self.total += len(self.rows)
        self.rows = []

    def close(self):
        self._flush()
        schema = [[(4, _Thrift.BINARY, "schema"), (5, _Thrift.I32, len(self.columns))]]
        for name, kind in self.columns:
            element = [(1, _Thrift.I32, kind), (3, _Thrift.I32, 1), (4, _Thrift.BINARY, name)]
            if kind == 6:  # UTF8 strings: converted type 0 and the STRING logical type
                element += [(6, _Thrift.I32, 0), (10, _Thrift.STRUCT, [(1, _Thrift.STRUCT, [])])]
            schema.append(element)
        footer = _Thrift.struct(
            [
                (1, _Thrift.I32, 1),
                (2, _Thrift.LIST, (_Thrift.STRUCT, schema)),
                (3, _Thrift.I64, self.total),
                (4, _Thrift.LIST, (_Thrift.STRUCT, self.groups)),
                (6, _Thrift.BINARY, "Rationale verify.py"),
            ]
        )
        self.sink.write(footer + struct.pack("<I", len(footer)) + b"PAR1")


# --- Command line ----------------------------------------------------------------------------------------
def main(argv):
    keys, witnesses, quorum, path, args = [], [], None, None, list(argv)
    try:
        while args:
            arg = args.pop(0)
            if arg in ("-h", "--help"):
                print(__doc__)
                return EXIT_USAGE
            if arg == "--key" and args:
                keys.append(args.pop(0))
            elif arg == "--witness-key" and args:
                witnesses.append(args.pop(0))
            elif arg == "--quorum" and args:
                text = args.pop(0)
                if not re.fullmatch(r"0|[1-9][0-9]{0,5}", text):
                    raise Usage("--quorum takes a number of witnesses, not %r" % text)
                quorum = int(text)
            elif arg == "--key-file" and args:
                keys.extend(read_key_file(args.pop(0)))
            elif arg.startswith("-") or path is not None:
                raise Usage("unexpected argument %r" % arg)
            else:
                path = arg
        if path is None:
            raise Usage("no bundle given")
    except Usage as exc:
        print("usage: %s\n%s" % (exc, __doc__.split("\n\n")[1]))
        return EXIT_USAGE
    return verify(path, keys, witnesses=witnesses, quorum=quorum)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
