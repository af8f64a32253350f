"""The curated public API, pinned: a change here is a change users see."""

from __future__ import annotations

import subprocess
import sys

import dojang
import dojang.errors
import dojang.keys
import dojang.stats
import dojang.text


def test_top_level_api() -> None:
    assert sorted(dojang.__all__) == sorted(
        [
            "ConfigError",
            "Detection",
            "DetectionError",
            "DojangError",
            "DojangKeyError",
            "InputError",
            "Key",
            "KeyRing",
            "ProvenanceError",
            "ServiceError",
            "Span",
            "Verdict",
            "__version__",
            "generate_key",
            "load_key",
            "save_key",
        ]
    )


def test_text_api() -> None:
    assert sorted(dojang.text.__all__) == sorted(
        [
            "PRESETS",
            "Generation",
            "GumbelConfig",
            "KGWConfig",
            "SchemeConfig",
            "SynthIDConfig",
            "TextDetector",
            "WatermarkLogitsProcessor",
            "detect",
            "generate",
            "generate_batch",
            "known_configs",
            "normalize",
            "preset",
            "register",
            "resolve",
            "scheme_config",
            "schemes",
        ]
    )
    for name in dojang.text.__all__:
        assert getattr(dojang.text, name) is not None


def test_submodule_apis() -> None:
    assert sorted(dojang.keys.__all__) == ["Key", "KeyRing", "generate_key", "load_key", "parse_key", "save_key"]
    assert sorted(dojang.stats.__all__) == sorted(
        ["Detection", "Span", "Verdict", "bonferroni_log", "decide", "log_binom_sf", "log_gamma_sf", "to_p_value"]
    )
    for name in dojang.errors.__all__:
        assert issubclass(getattr(dojang.errors, name), dojang.errors.DojangError)


def test_image_api() -> None:
    import dojang.image

    assert sorted(dojang.image.__all__) == sorted(
        [
            "DEFAULT_ALPHA",
            "MIN_DETECT_SIDE",
            "MIN_EMBED_SIDE",
            "SCHEME",
            "Embedded",
            "ImageDetector",
            "detect",
            "detect_file",
            "embed",
            "embed_file",
            "parse_payload",
            "psnr",
            "random_payload",
        ]
    )


def test_core_imports_without_torch() -> None:
    code = (
        "import sys, dojang, dojang.stats, dojang.keys, dojang.text, dojang.image, dojang.image.attacks\n"
        "from dojang.text import TextDetector, preset\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_provenance_api() -> None:
    import dojang.provenance

    assert sorted(dojang.provenance.__all__) == sorted(
        [
            "IMAGE_MATCH_BITS",
            "SOFT_BINDING_ALG",
            "STATES",
            "TEXT_SOFT_BINDING_ALG",
            "ChainProblem",
            "DevChain",
            "IdentityAssertion",
            "ManifestRecord",
            "ManifestSigner",
            "ManifestStore",
            "ManifestView",
            "SQLiteStore",
            "SignedText",
            "Stamped",
            "TextRecord",
            "ValidationStatus",
            "Verification",
            "ai_image_manifest",
            "ai_text_manifest",
            "check_chain",
            "default_store_path",
            "hamming",
            "image_fingerprint",
            "init_dev_chain",
            "load_chain",
            "open_store",
            "read_manifest",
            "read_text_manifest",
            "record_text",
            "sign_asset",
            "sign_text",
            "stamp",
            "stamp_bytes",
            "text_fingerprint",
            "text_sha256",
            "text_similarity",
            "verify",
            "verify_bytes",
        ]
    )
    for name in dojang.provenance.__all__:
        assert getattr(dojang.provenance, name) is not None


def test_provenance_imports_without_c2pa_or_torch() -> None:
    code = (
        "import sys, dojang.provenance\n"
        "assert 'c2pa' not in sys.modules, 'c2pa-python is imported only when signing or reading'\n"
        "assert 'c2pa_text' not in sys.modules, 'c2pa-text is imported only for a text that carries a wrapper'\n"
        "assert 'torch' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_api() -> None:
    import dojang.bench
    import dojang.text.attacks

    assert sorted(dojang.bench.__all__) == sorted(
        [
            "SCHEMA_VERSION", "AttackResult", "BenchResult", "Curve", "ImageSuite", "NullResult", "TextSuite",
            "Uniformity", "auc", "load_suite", "roc", "run_image", "run_text", "tpr_at_fpr", "tpr_nominal",
            "uniformity", "write_report",
        ]
    )  # fmt: skip
    assert sorted(dojang.text.attacks.__all__) == sorted(
        [
            "EMOJI_INSTRUCTION", "TextAttack", "case", "chain", "copy_paste", "delete_words", "emoji_count", "emoji_prompt",
            "fullwidth", "homoglyphs", "identity", "insert_words", "nfd", "paraphrase", "remove_emoji",
            "substitute_tokens", "swap_words", "whitespace", "zero_width",
        ]
    )  # fmt: skip


def test_scan_api() -> None:
    import dojang.scan

    expected = ["DEFAULT_FPR", "DEFAULT_OUT", "Item", "ScanRow", "ScanSummary", "Scorer", "scan"]
    assert sorted(dojang.scan.__all__) == sorted(expected)
    for name in dojang.scan.__all__:
        assert getattr(dojang.scan, name) is not None
