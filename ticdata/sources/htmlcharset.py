"""The character encoding of an HTML page, in the WHATWG order: BOM, HTTP charset, meta prescan, UTF-8.

https://html.spec.whatwg.org/multipage/parsing.html#determining-the-character-encoding: a byte
order mark wins, then the charset of the HTTP Content-Type header, then a `<meta charset>` or
`<meta http-equiv="Content-Type" content="...; charset=...">` found by the prescan of the first
1024 bytes, then UTF-8 (decoded with replacement characters). Labels follow the WHATWG Encoding
Standard's table, so `iso-8859-1` and `ascii` mean windows-1252 and `shift_jis` means windows-31j,
as browsers decode them; a label outside that table (e.g. `rot13`, a Python-only codec) is ignored.
"""

from __future__ import annotations

PRESCAN_BYTES = 1024

# WHATWG encoding -> (Python codec, labels). The "replacement" and "x-user-defined" encodings are
# left out: their labels count as unknown.
_TABLE: dict[str, tuple[str, str]] = {
    "utf-8": ("utf-8", "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8"),
    "ibm866": ("cp866", "866 cp866 csibm866 ibm866"),
    "iso-8859-2": ("iso8859_2", "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2"),
    "iso-8859-3": ("iso8859_3", "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3"),
    "iso-8859-4": ("iso8859_4", "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4"),
    "iso-8859-5": ("iso8859_5", "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 iso_8859-5:1988"),
    "iso-8859-6": (
        "iso8859_6",
        "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 iso-8859-6-e iso-8859-6-i "
        "iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    ),
    "iso-8859-7": (
        "iso8859_7",
        "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 iso88597 iso_8859-7 "
        "iso_8859-7:1987 sun_eu_greek",
    ),
    "iso-8859-8": (
        "iso8859_8",
        "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 iso88598 iso_8859-8 "
        "iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    ),
    "iso-8859-10": ("iso8859_10", "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6"),
    "iso-8859-13": ("iso8859_13", "iso-8859-13 iso8859-13 iso885913"),
    "iso-8859-14": ("iso8859_14", "iso-8859-14 iso8859-14 iso885914"),
    "iso-8859-15": ("iso8859_15", "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9"),
    "iso-8859-16": ("iso8859_16", "iso-8859-16"),
    "koi8-r": ("koi8_r", "cskoi8r koi koi8 koi8-r koi8_r"),
    "koi8-u": ("koi8_u", "koi8-ru koi8-u"),
    "macintosh": ("mac_roman", "csmacintosh mac macintosh x-mac-roman"),
    "windows-874": ("cp874", "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874"),
    "windows-1250": ("cp1250", "cp1250 windows-1250 x-cp1250"),
    "windows-1251": ("cp1251", "cp1251 windows-1251 x-cp1251"),
    "windows-1252": (
        "cp1252",
        "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 iso_8859-1 "
        "iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    ),
    "windows-1253": ("cp1253", "cp1253 windows-1253 x-cp1253"),
    "windows-1254": (
        "cp1254",
        "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    ),
    "windows-1255": ("cp1255", "cp1255 windows-1255 x-cp1255"),
    "windows-1256": ("cp1256", "cp1256 windows-1256 x-cp1256"),
    "windows-1257": ("cp1257", "cp1257 windows-1257 x-cp1257"),
    "windows-1258": ("cp1258", "cp1258 windows-1258 x-cp1258"),
    "x-mac-cyrillic": ("mac_cyrillic", "x-mac-cyrillic x-mac-ukrainian"),
    "gbk": ("gb18030", "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk"),
    "gb18030": ("gb18030", "gb18030"),
    "big5": ("big5hkscs", "big5 big5-hkscs cn-big5 csbig5 x-x-big5"),
    "euc-jp": ("euc_jp", "cseucpkdfmtjapanese euc-jp x-euc-jp"),
    "iso-2022-jp": ("iso2022_jp", "csiso2022jp iso-2022-jp"),
    "shift_jis": ("cp932", "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis"),
    "euc-kr": ("cp949", "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 windows-949"),
    "utf-16be": ("utf-16-be", "unicodefffe utf-16be"),
    "utf-16le": ("utf-16-le", "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le"),
}
_LABELS = {label: codec for codec, labels in _TABLE.values() for label in labels.split()}
_SPACE = b" \t\n\x0c\r"


def codec_for_label(label: str | bytes | None) -> str | None:
    """The Python codec of a WHATWG encoding label, or None for a label the standard does not know."""
    if label is None:
        return None
    if isinstance(label, bytes):
        label = label.decode("latin-1")
    return _LABELS.get(label.strip(" \t\n\x0c\r").lower())


def bom(head: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when the bytes start with a UTF-8 or UTF-16 byte order mark."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be", 2
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le", 2
    return None


def http_charset(content_type: str) -> str | None:
    """The codec named by the charset parameter of an HTTP Content-Type value, if it is a known label."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return codec_for_label(value.strip().strip("'\""))
    return None


def charset_from_content(content: bytes) -> bytes | None:
    """WHATWG "extract a character encoding from a meta element" on a content attribute value."""
    lower = content.lower()
    pos = 0
    while True:
        i = lower.find(b"charset", pos)
        if i < 0:
            return None
        j = i + 7
        while j < len(lower) and lower[j] in _SPACE:
            j += 1
        if j < len(lower) and lower[j : j + 1] == b"=":
            break
        pos = j
    j += 1
    while j < len(content) and content[j] in _SPACE:
        j += 1
    if j >= len(content):
        return None
    quote = content[j : j + 1]
    if quote in (b'"', b"'"):
        end = content.find(quote, j + 1)
        return content[j + 1 : end] if end >= 0 else None
    end = j
    while end < len(content) and content[end] not in _SPACE and content[end : end + 1] != b";":
        end += 1
    return content[j:end]


def _attribute(buf: bytes, i: int) -> tuple[bytes | None, bytes, int]:
    """WHATWG "get an attribute" from position i: (name or None at the tag's end, value, next position)."""
    n = len(buf)
    while i < n and (buf[i] in _SPACE or buf[i : i + 1] == b"/"):
        i += 1
    if i >= n or buf[i : i + 1] == b">":
        return None, b"", i
    name = bytearray()
    value = bytearray()
    while i < n:
        c = buf[i : i + 1]
        if c == b"=" and name:
            i += 1
            break
        if c in (b"/", b">"):
            return bytes(name), b"", i
        if c[0] in _SPACE:
            while i < n and buf[i] in _SPACE:
                i += 1
            if i < n and buf[i : i + 1] == b"=":
                i += 1
                break
            return bytes(name), b"", i
        name += c.lower()
        i += 1
    else:
        return None, b"", i
    while i < n and buf[i] in _SPACE:
        i += 1
    if i >= n:
        return None, b"", i
    c = buf[i : i + 1]
    if c in (b'"', b"'"):
        end = buf.find(c, i + 1)
        if end < 0:
            return None, b"", n
        return bytes(name), buf[i + 1 : end].lower(), end + 1
    if c == b">":
        return bytes(name), b"", i
    while i < n and buf[i] not in _SPACE and buf[i : i + 1] != b">":
        value += buf[i : i + 1].lower()
        i += 1
    if i >= n:
        return None, b"", i
    return bytes(name), bytes(value), i


def prescan(head: bytes) -> str | None:
    """WHATWG "prescan a byte stream to determine its encoding" over the first 1024 bytes."""
    buf = head[:PRESCAN_BYTES]
    n = len(buf)
    i = 0
    while i < n:
        if buf.startswith(b"<!--", i):
            end = buf.find(b"-->", i + 2)
            if end < 0:
                return None
            i = end + 3
            continue
        low = buf[i : i + 6].lower()
        if low[:5] == b"<meta" and len(low) == 6 and (low[5] in _SPACE or low[5:6] == b"/"):
            i += 6
            seen: set[bytes] = set()
            got_pragma, need_pragma, charset = False, None, None
            while True:
                name, value, i = _attribute(buf, i)
                if name is None:
                    break
                if name in seen:
                    continue
                seen.add(name)
                if name == b"http-equiv" and value == b"content-type":
                    got_pragma = True
                elif name == b"content" and charset is None:
                    found = charset_from_content(value)
                    if found is not None:
                        charset, need_pragma = found, True
                elif name == b"charset" and charset is None:
                    charset, need_pragma = value, False
            if i >= n:
                return None  # the tag runs past the prescan window
            if charset is None or (need_pragma and not got_pragma):
                i += 1
                continue
            codec = codec_for_label(charset)
            if codec in ("utf-16-be", "utf-16-le"):
                codec = "utf-8"
            if codec is not None:
                return codec
            i += 1
            continue
        if buf[i : i + 1] == b"<" and i + 1 < n and (buf[i + 1 : i + 2].isalpha() or (buf[i + 1 : i + 2] == b"/" and buf[i + 2 : i + 3].isalpha())):
            i += 2 if buf[i + 1 : i + 2] == b"/" else 1
            while i < n and buf[i] not in _SPACE and buf[i : i + 1] != b">":
                i += 1
            while True:
                name, _, i = _attribute(buf, i)
                if name is None:
                    break
            i += 1
            continue
        if buf.startswith((b"<!", b"</", b"<?"), i):
            end = buf.find(b">", i + 2)
            if end < 0:
                return None
            i = end + 1
            continue
        i += 1
    return None


def sniff(head: bytes, content_type: str = "") -> tuple[str, int]:
    """(Python codec, bytes of BOM to skip) for a page starting with `head` (at least its first 1024
    bytes, or all of a shorter page) served with this HTTP Content-Type."""
    found = bom(head)
    if found:
        return found
    return http_charset(content_type) or prescan(head) or "utf-8", 0
