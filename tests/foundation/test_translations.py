"""Two languages, complete: every string the site marks for translation has its zh-Hans text, the compiled
catalogue (.mo, committed) says the same as the .po, and the .po holds every string the sources mark now
(re-extracted with Django's makemessages), so a new string without its translation fails here."""

from __future__ import annotations

import gettext
import shutil
import subprocess
import sys

import polib
import pytest

from tests.servers import ROOT

PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SOURCES = ("accounts", "billing", "channels_app", "relay", "tokenhub", "templates", "manage.py")


def entries() -> list[polib.POEntry]:
    return [entry for entry in polib.pofile(str(PO)) if not entry.obsolete]


def test_every_string_has_its_chinese_text():
    untranslated = [e.msgid for e in entries() if not e.translated() or "fuzzy" in e.flags]
    assert entries() and untranslated == []


def test_placeholders_survive_translation():
    import re

    placeholder = re.compile(r"%\([a-z_]+\)s|\{[a-z]+\}|%%")
    for entry in entries():
        text = entry.msgstr or entry.msgstr_plural[0]
        assert sorted(placeholder.findall(entry.msgid)) == sorted(placeholder.findall(text)), entry.msgid


def test_the_compiled_catalogue_matches_the_po():
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in entries():
        if entry.msgid_plural:
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 2) == entry.msgstr_plural[0], entry.msgid
        else:
            assert compiled.gettext(entry.msgid) == entry.msgstr, f"{entry.msgid}: run manage.py compilemessages"


@pytest.mark.skipif(not shutil.which("xgettext"), reason="GNU gettext is installed by scripts/ensure-services")
def test_the_po_holds_every_string_the_sources_mark(tmp_path):
    for name in SOURCES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    shutil.copytree(ROOT / "locale", tmp_path / "locale")
    env = {"DJANGO_SETTINGS_MODULE": "tokenhub.settings", "DEBUG": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--no-location"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = {e.msgid for e in polib.pofile(str(tmp_path / "locale/zh_Hans/LC_MESSAGES/django.po"))}
    assert len(fresh) > 100  # the extraction ran over the real sources
    missing = sorted(fresh - {e.msgid for e in entries()})
    assert missing == [], f"strings marked in the sources but missing from {PO.relative_to(ROOT)}: {missing}"
