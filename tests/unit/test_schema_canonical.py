"""Schema texts as Confluent's registry keeps them: Apache Avro (Java)'s ``Schema.toString()``.

The examples' expected texts were written by Avro's own Java library (the one shaded in flink-sql-avro); the
cross-check runs that library over a few hundred generated schemas and compares every text.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry.core.settings import Settings
from registry.schema_registry.canonical import canonical_text, resolved_text
from registry.schema_registry.store import SchemaStore, normalize

EXAMPLES = [
    (
        '{"type":"record","name":"myrecord","fields":[{"name":"f1","type":"string"}]}',
        '{"type":"record","name":"myrecord","fields":[{"name":"f1","type":"string"}]}',
    ),
    ('{"fields":[{"type":"string","name":"f1"}],"name":"myrecord","type":"record"}', None),  # same as the first
    ('"string"', '"string"'),
    ('{"type":"string"}', '"string"'),
    ('{"type":"string","logicalType":"uuid"}', '{"type":"string","logicalType":"uuid"}'),
    (
        '{"name":"a.b.R","type":"record","fields":[{"name":"x","type":{"type":"record","name":"S","fields":'
        '[{"name":"y","type":"int"}]}},{"name":"z","type":"S"},{"name":"w","type":"a.b.S"}]}',
        '{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"x","type":{"type":"record","name":"S",'
        '"fields":[{"name":"y","type":"int"}]}},{"name":"z","type":"S"},{"name":"w","type":"S"}]}',
    ),
    (
        '{"type":"record","name":"R","namespace":"n","fields":[{"name":"e","type":{"type":"enum","name":"E",'
        '"namespace":"","symbols":["A","B"],"default":"A"},"default":"A","order":"descending","doc":"d"}],'
        '"doc":"rd","aliases":["n.Old","x.Y"],"custom":1}',
        '{"type":"record","name":"R","namespace":"n","doc":"rd","fields":[{"name":"e","type":{"type":"enum",'
        '"name":"E","namespace":"","symbols":["A","B"],"default":"A"},"doc":"d","default":"A",'
        '"order":"descending"}],"custom":1,"aliases":["Old","x.Y"]}',
    ),
    (
        '{"type":"array","items":{"type":"map","values":["null","long"]},"doc":"dropped"}',
        '{"type":"array","items":{"type":"map","values":["null","long"]}}',
    ),
    (
        '{"type":"fixed","name":"F","size":16,"logicalType":"decimal","precision":4,"scale":2}',
        '{"type":"fixed","name":"F","size":16,"logicalType":"decimal","precision":4,"scale":2}',
    ),
    (  # a type named like one of Avro's types is written by its full name in its own namespace too (Java's Name)
        '{"type":"record","name":"R","namespace":"x","fields":[{"name":"f","type":{"type":"record","name":"record",'
        '"fields":[]}},{"name":"g","type":"x.record"},{"name":"h","type":{"type":"fixed","name":"map","size":1}},'
        '{"name":"i","type":"x.map"}]}',
        '{"type":"record","name":"R","namespace":"x","fields":[{"name":"f","type":{"type":"record","name":"record",'
        '"fields":[]}},{"name":"g","type":"x.record"},{"name":"h","type":{"type":"fixed","name":"map","size":1}},'
        '{"name":"i","type":"x.map"}]}',
    ),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_the_text_is_avros_own(text: str, expected: str | None) -> None:
    assert normalize(text) == (expected or EXAMPLES[0][1])


def test_equivalent_spellings_are_one_schema_with_one_id(tmp_path: Path) -> None:
    store = SchemaStore(tmp_path / "s.db")
    first = store.register("a", '{"type":"record","name":"a.b.R","fields":[{"name":"x","type":{"type":"string"}}]}')
    again = store.register(
        "b", '{"fields":[{"name":"x","type":"string"}],"namespace":"a.b","name":"R","type":"record"}'
    )
    assert again.id == first.id
    assert store.by_id(first.id) == (
        '{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"x","type":"string"}]}'
    )
    assert store.register("c", '{"type":"string"}').id == store.register("d", '"string"').id
    # a type named like one of Avro's, referred to by its short name or its full one: one text (Java's), one id
    named = '{"type":"record","name":"R","namespace":"x","fields":[{"name":"f","type":{"type":"fixed","name":"map","size":1}},'
    short, full = (
        store.register(s, named + f'{{"name":"g","type":"{t}"}}]}}') for s, t in (("e", "map"), ("f", "x.map"))
    )
    assert short.id == full.id
    assert store.by_id(short.id).endswith('{"name":"g","type":"x.map"}]}')


def test_a_store_of_texts_written_before_type_names_were_qualified_is_rewritten(tmp_path: Path) -> None:
    """A text stored with a type named ``record`` referred to by its short name (the registry wrote it so): the
    same schema registered again after the change found no text of its own and took a new id."""
    import sqlite3

    path = tmp_path / "s.db"
    schema = (
        '{"type":"record","name":"R","namespace":"x","fields":[{"name":"f","type":{"type":"record","name":"record",'
        '"fields":[]}},{"name":"g","type":"x.record"}]}'
    )
    registered = SchemaStore(path).register("s", schema)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE schemas SET normalized = ? WHERE id = ?", (schema.replace('"x.record"', '"record"'), registered.id)
        )
        conn.execute("PRAGMA user_version = 1")
    reopened = SchemaStore(path)
    assert reopened.by_id(registered.id) == schema
    assert reopened.register("s", schema).id == registered.id


def test_a_referenced_type_is_written_by_name(tmp_path: Path) -> None:
    dependency = {"type": "record", "name": "Money", "namespace": "m", "fields": [{"name": "cents", "type": "long"}]}
    schema = {"type": "record", "name": "Order", "namespace": "o", "fields": [{"name": "total", "type": "m.Money"}]}
    assert canonical_text(schema, [dependency]) == (
        '{"type":"record","name":"Order","namespace":"o","fields":[{"name":"total","type":"m.Money"}]}'
    )


def test_a_store_of_sorted_texts_is_rewritten_in_avros_order_keeping_its_ids(tmp_path: Path) -> None:
    """A store written before (texts re-serialised with sorted keys) answers the same ids with Avro's text,
    and a schema registered again finds its id."""
    import sqlite3

    path = tmp_path / "s.db"
    store = SchemaStore(path)
    schema = '{"type":"record","name":"R","fields":[{"name":"f","type":"int"},{"name":"g","type":"string"}]}'
    registered = store.register("s", schema)
    old = json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schemas SET normalized = ? WHERE id = ?", (old, registered.id))
        conn.execute("PRAGMA user_version = 0")
    reopened = SchemaStore(path)
    assert reopened.by_id(registered.id) == schema
    assert reopened.register("s", schema).version == registered.version


# --- the cross-check against Avro's Java library ---------------------------------------------------------

_JAVA = """
import org.apache.flink.avro.shaded.org.apache.avro.Schema;
import java.nio.file.*;
public class Canon {
  public static void main(String[] a) throws Exception {
    for (String line : Files.readAllLines(Paths.get(a[0]))) {
      try {
        System.out.println(new Schema.Parser().setValidateDefaults(false).parse(line).toString());
      } catch (Exception e) {
        System.out.println("ERR");
      }
    }
  }
}
"""


class _Schemas:
    """Random valid schemas: nested named types in several namespaces, references by short and full name,
    properties, logical types, docs, aliases, defaults and orders."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.named: list[tuple[str, str | None]] = []  # (full name, namespace) of every named type so far
        self.count = 0

    def schema(self, space: str | None, depth: int) -> Any:
        r = self.rnd
        choices = ["primitive", "primitive_props", "array", "map", "union"]
        if depth < 3:
            choices += ["record", "record", "enum", "fixed"]
        # A type of the null namespace named from inside another namespace: Avro's Java parser (1.12) falls back to
        # it, and so does our registry; the generator leaves it out because the Avro this test compares with may not.
        reachable = [(full, own) for full, own in self.named if own is not None or space is None]
        if reachable:
            choices.append("reference")
        kind = r.choice(choices)
        if kind == "primitive":
            return r.choice(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])
        if kind == "primitive_props":
            node: dict[str, Any] = {"type": r.choice(["int", "long", "string"])}
            if node["type"] == "long" and r.random() < 0.5:
                node["logicalType"] = "timestamp-millis"
            if r.random() < 0.5:
                node["x-prop"] = r.choice([1, "v", [1, 2], {"k": True}])
            if r.random() < 0.3:
                node["doc"] = "dropped"
            return node
        if kind == "array":
            return {"type": "array", "items": self.schema(space, depth + 1), **self._props()}
        if kind == "map":
            return {"type": "map", "values": self.schema(space, depth + 1), **self._props()}
        if kind == "union":
            member = self.schema(space, depth + 1)
            if isinstance(member, list) or member == "null" or (isinstance(member, dict) and member["type"] == "null"):
                member = "string"
            return ["null", member]
        if kind == "reference":
            full, own = r.choice(reachable)
            return full.rsplit(".", 1)[1] if own is not None and own == space else full
        return self._named(kind, space, depth)

    def _props(self) -> dict[str, Any]:
        return {"x-p": self.rnd.choice([0, "s"])} if self.rnd.random() < 0.3 else {}

    def _named(self, kind: str, space: str | None, depth: int) -> dict[str, Any]:
        r = self.rnd
        self.count += 1
        short = f"{kind.capitalize()}{self.count}"
        node: dict[str, Any] = {"type": kind}
        form = r.choice(["inherit", "namespace", "dotted", "null"])
        if form == "dotted":
            own: str | None = r.choice(["a.b", "c"])
            node["name"] = f"{own}.{short}"
        else:
            node["name"] = short
            own = space
            if form == "namespace":
                own = r.choice(["a.b", "c", "d.e.f"])
                node["namespace"] = own
            elif form == "null":
                own = None
                node["namespace"] = ""
        if r.random() < 0.3:
            node["doc"] = r.choice(["a doc", "ünïcode", 'quote " and \\ backslash'])
        if r.random() < 0.3:
            node["aliases"] = r.sample([f"{own}.Old{self.count}" if own else f"Old{self.count}", "x.Y", "Z"], 2)
        full = f"{own}.{short}" if own else short
        if kind == "record":
            fields = []
            for i in range(r.randint(0, 3)):
                field: dict[str, Any] = {"name": f"f{i}", "type": self.schema(own, depth + 1)}
                if r.random() < 0.3:
                    field["doc"] = "field doc"
                if r.random() < 0.3:
                    field["order"] = r.choice(["ascending", "descending", "ignore"])
                if r.random() < 0.2:
                    field["aliases"] = ["old_f"]
                if r.random() < 0.2:
                    field["x-field"] = {"n": 1}
                if field["type"] in ("int", "long") and r.random() < 0.5:
                    field["default"] = r.choice([0, -7, 123456789])
                elif field["type"] == "string" and r.random() < 0.5:
                    field["default"] = "dé"
                elif isinstance(field["type"], list) and r.random() < 0.5:
                    field["default"] = None
                fields.append(field)
            node["fields"] = fields
            self.named.append((full, own))  # (after its fields: recursion is not generated)
        elif kind == "enum":
            node["symbols"] = r.sample(["A", "B", "C", "D"], r.randint(1, 4))
            if r.random() < 0.4:
                node["default"] = node["symbols"][0]
            self.named.append((full, own))
        else:
            node["size"] = r.choice([1, 8, 16])
            if node["size"] == 16 and r.random() < 0.5:
                node.update({"logicalType": "decimal", "precision": 4, "scale": 2})
            self.named.append((full, own))
        node.update(self._props())
        return node


def _avro_java(tmp_path: Path, name: str, source: str, lines: list[str]) -> list[str]:
    """The lines class ``name`` (``source``, run against Avro's Java library as flink-sql-avro shades it) prints
    for a file of ``lines``."""
    jars = sorted(Settings.from_env().flink_jars_dir.glob("flink-sql-avro-*.jar"))
    slf4j = sorted(Path.home().joinpath(".cache", "featurestore").rglob("slf4j-api-*.jar"))
    assert jars and slf4j, "flink-sql-avro and slf4j-api are fetched by `make fetch` (python -m infra fetch)"
    classpath = f"{jars[-1]}:{slf4j[-1]}:{tmp_path}"
    (tmp_path / f"{name}.java").write_text(source)
    subprocess.run(["javac", "-cp", classpath, "-d", str(tmp_path), str(tmp_path / f"{name}.java")], check=True)
    (tmp_path / "cases.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run(
        ["java", "-Dfile.encoding=UTF-8", "-cp", classpath, name, str(tmp_path / "cases.txt")],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return done.stdout.decode("utf-8").splitlines()


def test_every_text_is_what_avros_java_library_writes(tmp_path: Path) -> None:
    texts = []
    for seed in range(300):
        schemas = _Schemas(seed)
        texts.append(json.dumps(schemas.schema(None, 0), ensure_ascii=False))
    answers = _avro_java(tmp_path, "Canon", _JAVA, texts)
    assert len(answers) == len(texts)
    compared = 0
    for text, java in zip(texts, answers, strict=True):
        if java == "ERR":
            continue
        assert normalize(text) == java, text
        compared += 1
    assert compared >= 250  # the generator makes valid schemas: nearly every one is compared


_JAVA_RESOLVED = """
import org.apache.flink.avro.shaded.org.apache.avro.Schema;
import java.nio.file.*;
public class Resolved {
  public static void main(String[] a) throws Exception {
    for (String line : Files.readAllLines(Paths.get(a[0]))) {
      Schema.Parser parser = new Schema.Parser().setValidateDefaults(false);
      Schema last = null;
      for (String part : line.split("\\t")) last = parser.parse(part);
      System.out.println(last.toString());
    }
  }
}
"""

# (referenced schemas, each after the ones it uses, then the schema): named types reached through references by
# short and full names, from inside and outside their namespace, used twice, nested in arrays, maps and unions
_RESOLVED_CASES = [
    [
        '{"type":"enum","name":"Currency","namespace":"fs.common","symbols":["EUR","USD"]}',
        '{"type":"record","name":"Money","namespace":"fs.common","fields":[{"name":"amount","type":"double"},'
        '{"name":"currency","type":"Currency"}]}',
        '{"type":"record","name":"Payment","namespace":"fs.pay","fields":[{"name":"price","type":"fs.common.Money"},'
        '{"name":"refund","type":["null","fs.common.Money"]},{"name":"seen","type":{"type":"array","items":'
        '"fs.common.Currency"}}]}',
    ],
    [
        '{"type":"fixed","name":"Hash","size":16}',
        '{"type":"record","name":"Doc","namespace":"d","fields":[{"name":"h","type":{"type":"map","values":"Hash"}},'
        '{"name":"again","type":"Hash"}]}',
    ],
    [
        '{"type":"record","name":"Money","namespace":"fs.common","fields":[{"name":"amount","type":"double"}]}',
        '{"type":"record","name":"Order","namespace":"fs.common","fields":[{"name":"m","type":"Money"},'
        '{"name":"inner","type":{"type":"record","name":"Line","fields":[{"name":"m2","type":"fs.common.Money"}]}}]}',
    ],
]


def test_the_resolved_text_is_what_avros_java_library_writes_after_the_references(tmp_path: Path) -> None:
    """``?format=resolved`` (Confluent's ``AvroSchema.formattedString("resolved")``) is Avro Java's ``toString()`` of
    the schema parsed after its references: their named types written in full where first met."""
    answers = _avro_java(tmp_path, "Resolved", _JAVA_RESOLVED, ["\t".join(c) for c in _RESOLVED_CASES])
    assert len(answers) == len(_RESOLVED_CASES)
    for case, java in zip(_RESOLVED_CASES, answers, strict=True):
        *references, schema = (json.loads(text) for text in case)
        assert resolved_text(schema, references) == java, case
        assert canonical_text(schema, references) != java  # the stored text names them instead


@pytest.mark.parametrize("version", [0, 2])
def test_a_subject_of_a_second_spelling_finds_its_schema_after_the_rewrite(tmp_path: Path, version: int) -> None:
    """Two spellings of one schema registered apart before texts were Avro's (two ids, the table's texts unique):
    the rewrite left the later id its old text, and its subject no longer found its own schema (40403 on lookup, a
    new version under the other id on register; audit, 2026-12-07), also in a store rewritten before (version 2).
    Both texts are Avro's now, each subject finds its own version and id, a new subject the first id."""
    import sqlite3

    path = tmp_path / "s.db"
    schema = '{"type":"record","name":"E","namespace":"ev","fields":[{"name":"a","type":"string"}]}'
    spelled = json.loads(schema) | {"fields": [{"name": "a", "type": {"type": "string"}}]}
    with sqlite3.connect(path) as conn:  # the tables as a store of 2026-12-06 made them
        conn.executescript(
            "CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, normalized TEXT NOT NULL,"
            " schema_type TEXT NOT NULL DEFAULT 'AVRO', refs TEXT NOT NULL DEFAULT '[]', UNIQUE (normalized, refs));"
            "CREATE TABLE subject_versions (subject TEXT NOT NULL, version INTEGER NOT NULL,"
            " schema_id INTEGER NOT NULL REFERENCES schemas(id), deleted INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (subject, version));"
        )
        for i, (subject, text) in enumerate(((("team-a-value", json.loads(schema))), ("team-b-value", spelled)), 1):
            old = json.dumps(text, sort_keys=True, separators=(",", ":"))
            conn.execute(
                "INSERT INTO schemas (id, normalized) VALUES (?, ?)", (i, old if version == 0 or i == 2 else schema)
            )
            conn.execute("INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, 1, ?)", (subject, i))
        conn.execute(f"PRAGMA user_version = {version}")
    store = SchemaStore(path)
    for subject, schema_id in (("team-a-value", 1), ("team-b-value", 2)):
        found = store.lookup(subject, json.dumps(spelled))
        assert (found.version, found.id) == (1, schema_id), subject
        again = store.register(subject, schema)
        assert (again.version, again.id) == (1, schema_id), subject
        assert store.by_id(schema_id) == schema
    assert store.register("team-c-value", schema).id == 1
    assert SchemaStore(path).register("team-b-value", json.dumps(spelled)).id == 2  # opened again: as it was
