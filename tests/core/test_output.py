import io

from skiff.output import Output


def test_fields_render_one_aligned_report_section():
    stream = io.StringIO()
    Output(stream=stream).fields(
        "web git information",
        {"deploy_branch": "main", "keep-git-dir": False, "tags": ["a", "b"], "meta": {"x": 1}, "last": None},
    )
    assert stream.getvalue().splitlines() == [
        "=====> web git information",
        "       Deploy branch: main",
        "       Keep git dir:  False",
        "       Tags:          a b",
        '       Meta:          {"x": 1}',
        "       Last:          ",
    ]
