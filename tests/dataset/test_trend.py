import polars as pl

from dataset.trend import plot_value_trend, trend_markdown, value_trend


def rows() -> pl.DataFrame:
    data = [
        ("C017", "s1", "value", "Obedience", "supports"),
        ("C017", "s2", "value", "obedience.", "supports"),
        ("C017", "s2", "value", "Mercy", "either"),
        ("C020", "s3", "value", "Obedience", "opposes"),
        ("C020", "s4", "value", "Autonomy", "supports"),
        ("C020", "s4", "duty", "Duty to vote", "supports"),
    ]
    return pl.DataFrame(data, schema=["century", "situation_id", "kind", "text", "valence"], orient="row")


def test_counts_shares_and_valence_by_century_with_normalised_items():
    trend = value_trend(rows(), top_k=2)
    c17 = trend.filter((pl.col("century") == "C017") & (pl.col("kind") == "value")).to_dicts()
    assert [(r["item"], r["rank"], r["n"], r["share_of_situations"], r["supports"]) for r in c17] == [
        ("obedience", 1, 2, 1.0, 1.0),
        ("mercy", 2, 1, 0.5, 0.0),
    ]
    c20 = trend.filter((pl.col("century") == "C020") & (pl.col("item") == "obedience")).row(0, named=True)
    assert c20["opposes"] == 1.0 and c20["share_of_situations"] == 0.5
    assert value_trend(rows(), top_k=1).filter(pl.col("kind") == "value").height == 2


def png_height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # the IHDR chunk: width at 16, height at 20


def test_plot_is_a_png_with_a_row_per_kind_and_markdown_lists_top_items_of_each_kind():
    trend = value_trend(rows())
    every_kind, values_only = plot_value_trend(trend), plot_value_trend(trend, kinds=("value",))
    assert every_kind[:8] == b"\x89PNG\r\n\x1a\n" and png_height(every_kind) > png_height(values_only)
    assert plot_value_trend(trend.head(0))[:4] == b"\x89PNG"
    table = trend_markdown(trend)
    assert "| C020 | value | 1 |" in table and "| C020 | duty | 1 | duty to vote |" in table
    assert table.index("| C017 | value | 1 |") < table.index("| C020 | value | 1 |") < table.index("| C020 | duty |")
