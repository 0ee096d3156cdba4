#!/usr/bin/env python3
"""Checks an in-toto Statement, or a bare predicate, against the schemas the
in-toto attestation framework publishes (its protobuf definitions, from the
PyPI package in-toto-attestation, which scripts/setup.sh installs into
target/harness/venv).

    check-intoto.py statement FILE          an in-toto Statement v1
    check-intoto.py predicate TYPE FILE     a predicate of TYPE on its own

Parsing is strict: a field the schema does not have, or a value of the
wrong type, fails. Where the package's protobuf and SLSA's VSA text
disagree, the text wins and the field is checked here as the text says: a
predicate field whose name is a URI (an extension, which the text allows),
verifier.version (a map of strings since VSA 1.1, not in the protobuf), and
verifiedLevels (an array of strings in the text; the protobuf of
in-toto-attestation 0.9.3 declares one string). Prints one line and exits 0
when the document passes, 1 with the reason when not.
"""

import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

PROVENANCE = "https://slsa.dev/provenance/v1"
VSA = "https://slsa.dev/verification_summary/v1"


class Invalid(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Invalid(what)


def strict(doc, message):
    try:
        json_format.ParseDict(doc, message)
    except json_format.ParseError as e:
        raise Invalid(f"not the schema's {message.DESCRIPTOR.full_name}: {e}")
    return message


def check_vsa(predicate):
    p = {k: v for k, v in predicate.items() if not k.startswith("https://")}
    verifier = dict(p.get("verifier") or {})
    version = verifier.pop("version", {})
    need(
        isinstance(version, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in version.items()),
        "verifier.version is not a map of strings",
    )
    p["verifier"] = verifier
    levels = p.pop("verifiedLevels", None)
    need(
        isinstance(levels, list) and levels and all(isinstance(x, str) and x for x in levels),
        "verifiedLevels is not a non-empty array of strings",
    )
    m = strict(p, vsa_pb2.VerificationSummary())
    need(m.verifier.id, "verifier.id is required")
    need(m.resource_uri, "resourceUri is required")
    need(m.policy.uri, "policy.uri is required")
    need(m.HasField("time_verified"), "timeVerified is missing")
    need(m.verification_result in ("PASSED", "FAILED"), "verificationResult is not PASSED or FAILED")
    if m.verification_result == "FAILED":
        need(levels == ["FAILED"], "a FAILED result must have verifiedLevels [FAILED]")
    need(
        not any(x.startswith("SLSA_") for x in levels)
        or all(x.startswith("SLSA_") or x == "FAILED" for x in levels),
        "verifiedLevels mixes SLSA_ values with custom ones",
    )
    return f"VSA {m.verification_result} by {m.verifier.id}"


def check_provenance(predicate):
    m = strict(predicate, provenance_pb2.Provenance())
    d = m.build_definition
    need(d.build_type, "buildDefinition.buildType is required")
    need(d.HasField("external_parameters"), "buildDefinition.externalParameters is required")
    need(m.run_details.builder.id, "runDetails.builder.id is required")
    for rd in list(d.resolved_dependencies) + list(m.run_details.builder.builder_dependencies):
        try:
            ResourceDescriptor.copy_from_pb(rd).validate()
        except ValueError as e:
            raise Invalid(f"resolved dependency {rd.name or rd.uri}: {e}")
    return f"SLSA provenance, {len(d.resolved_dependencies)} resolved dependencies"


PREDICATES = {PROVENANCE: check_provenance, VSA: check_vsa}


def check_predicate(kind, predicate):
    need(kind in PREDICATES, f"no schema here for predicate type {kind}")
    need(isinstance(predicate, dict), "the predicate is not an object")
    return PREDICATES[kind](predicate)


def check_statement(doc):
    need(isinstance(doc, dict), "not a JSON object")
    need(doc.get("_type") == "https://in-toto.io/Statement/v1", f"_type is {doc.get('_type')!r}")
    try:
        Statement.copy_from_pb(strict(doc, statement_pb2.Statement())).validate()
    except ValueError as e:
        raise Invalid(f"statement: {e}")
    return check_predicate(doc["predicateType"], doc["predicate"])


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "statement":
            what = check_statement(json.load(open(argv[2])))
        elif len(argv) == 4 and argv[1] == "predicate":
            what = check_predicate(argv[2], json.load(open(argv[3])))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except (Invalid, OSError, json.JSONDecodeError) as e:
        print(f"{argv[-1]}: invalid: {e}")
        return 1
    print(f"{argv[-1]}: valid: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
