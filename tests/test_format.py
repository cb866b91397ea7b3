"""The text helpers the commands print with: numbers, durations, masked URLs (properties)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lrkit._format import (
    accuracy_cell,
    counted,
    duration,
    failure,
    group_ratios_text,
    loss_cell,
    mask_arguments,
    mask_keywords,
    mask_secrets,
    mask_url,
    round_floats,
    secret_like,
    shorten,
    title_lines,
    unencoded_at,
    url_parts,
    wrap_spec,
)

SECRET = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789!$%^*()-_", min_size=6, max_size=20)
USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@given(user=USER, secret=SECRET, port=st.integers(1, 65535))
def test_a_masked_url_never_holds_the_password(user: str, secret: str, port: int) -> None:
    url = f"postgresql://{user}:{secret}@db.example:{port}/lrkit?sslmode=require"
    masked = mask_url(url)
    assert secret not in masked
    assert masked == f"postgresql://{user}:***@db.example:{port}/lrkit?sslmode=require"
    text = f"could not connect to {url}: password {secret} rejected"
    assert secret not in mask_secrets(text, url)


@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False))
def test_round_floats_keeps_four_significant_digits(x: float) -> None:
    spec = f"cosine(lr={x!r}, total_steps=100)"
    out = round_floats(spec)
    assert out.endswith(", total_steps=100)")  # integers stay as they are
    value = float(out[len("cosine(lr=") : -len(", total_steps=100)")])
    assert math.isclose(value, x, rel_tol=5e-4, abs_tol=0.0)
    assert len(out) <= len(spec)


def test_round_floats_examples() -> None:
    assert round_floats("onecycle(max_lr=0.054986223681948415, final_div_factor=10000.0)") == (
        "onecycle(max_lr=0.05499, final_div_factor=10000)"
    )
    assert round_floats("step(0.1, 30, 0.5)") == "step(0.1, 30, 0.5)"


def test_duration_and_shorten() -> None:
    assert duration(0.0421) == "42.1 ms" and duration(3.456) == "3.46 s"
    assert duration(754) == "12 min 34 s" and duration(-1) == "-"
    # at a unit's edge the rounded value moves to the next unit, never "1e+03 ms" or "60 s"
    assert duration(0.9996) == "1 s" and duration(0.9994) == "999 ms"
    assert duration(59.996) == "1 min 0 s" and duration(59.94) == "59.9 s"
    long = "x" * 1000
    assert len(shorten(long, 100)) <= 100 and "1000 characters" in shorten(long, 100)
    assert shorten("a\nb  c") == "a b c"


@given(st.lists(st.text(alphabet="abc=0.1", min_size=1, max_size=12), min_size=1, max_size=30))
def test_wrap_spec_keeps_every_character(parts: list[str]) -> None:
    spec = "f(" + ", ".join(parts) + ")"
    lines = wrap_spec(spec, 30)
    assert " ".join(lines) == spec
    assert all(len(ln) <= 30 or ", " not in ln for ln in lines)


# any password a user may type unencoded: SQLAlchemy reads '/', '?', '#' and ':' in it as part
# of the password (up to the first '@'); everything up to the last '@' is masked
ANY_SECRET = st.text(min_size=1, max_size=24).filter(lambda s: "*" not in s)
QUERY = st.sampled_from(["", "?sslmode=require", "?connect_timeout=3&sslmode=disable"])


@given(user=USER, secret=ANY_SECRET, port=st.integers(1, 65535), query=QUERY)
def test_no_password_ever_shows_in_a_masked_url(
    user: str, secret: str, port: int, query: str
) -> None:
    url = f"postgresql://{user}:{secret}@localhost:{port}/db{query}"
    assert mask_url(url) == f"postgresql://{user}:***@localhost:{port}/db{query}"
    # a driver repeating the password: it is masked there, and nothing else is (a password
    # that is also a word of the message would be masked there too: left out here)
    fixed = "storage : cannot use the database: password  rejected"
    assume("@" not in secret and not any(c.isspace() for c in secret) and secret not in fixed)
    text = f"storage {url}: cannot use the database: password {secret} rejected"
    assert mask_secrets(text, url) == (
        f"storage {mask_url(url)}: cannot use the database: password *** rejected"
    )


def test_a_password_is_masked_as_a_token_never_inside_words_hosts_or_numbers() -> None:
    url = "postgresql://postgres:postgres@127.0.0.1:1/postgres"
    msg = f'storage {url}: port 1 failed: password authentication failed for user "postgres"'
    assert mask_secrets(msg, url) == (
        "storage postgresql://postgres:***@127.0.0.1:1/postgres: port 1 failed: password "
        'authentication failed for user "***"'
    )
    # a short password: only after a password keyword, never in "--storage", hosts or ports
    url = "postgresql://alice:t@dbhost:xx/lrkit"
    assert mask_secrets(f"--storage {url}: the port must be an integer (pwd=t)", url) == (
        "--storage postgresql://alice:***@dbhost:xx/lrkit: the port must be an integer (pwd=***)"
    )
    url = "postgresql://alice:1@127.0.0.1:1/db"
    assert mask_secrets('server at "127.0.0.1", port 1 failed: password 1', url) == (
        'server at "127.0.0.1", port 1 failed: password ***'
    )


@given(user=USER, secret=ANY_SECRET.filter(lambda s: "@" not in s), port=st.integers(1, 65535))
def test_the_password_is_found_where_sqlalchemy_finds_it(user: str, secret: str, port: int):
    from urllib.parse import unquote

    make_url = pytest.importorskip("sqlalchemy.engine").make_url
    url = f"postgresql://{user}:{secret}@localhost:{port}/db"
    parts = url_parts(url)
    assert parts is not None and parts["password"] == secret
    assert make_url(url).password == unquote(secret)
    assert (parts["ipv4host"], parts["port"], parts["database"]) == ("localhost", str(port), "db")


def test_mask_url_examples() -> None:
    assert mask_url("postgresql://alice:pa/ss99@localhost:1/db") == (
        "postgresql://alice:***@localhost:1/db"
    )
    assert mask_url("postgresql://alice:p#q?r:s@h/db") == "postgresql://alice:***@h/db"
    assert mask_url("postgresql://host:5432/db") == "postgresql://host:5432/db"  # no password
    assert mask_url("postgresql://a@b:pw@h/db") == "postgresql://a@b:***@h/db"
    line = "could not translate host name: pa/ss99 at postgresql://alice:pa/ss99@localhost:1/db"
    assert mask_secrets(line, "postgresql://alice:pa/ss99@localhost:1/db") == (
        "could not translate host name: *** at postgresql://alice:***@localhost:1/db"
    )
    assert mask_secrets("pa/ss", "postgresql://alice:pa%2Fss@h/db") == "***"  # unquoted too
    # an "@" in the query: the URL is masked up to it (it cannot tell where the password
    # ends), but a driver's message keeps the host, port and database
    url = "postgresql://optuna:s3cret@db.internal:5432/studies?sslrootcert=/etc/ssl/ca@corp.pem"
    assert mask_url(url) == "postgresql://optuna:***@corp.pem"
    msg = "could not connect to server db.internal port 5432 for database studies (s3cret)"
    assert mask_secrets(msg, url) == (
        "could not connect to server db.internal port 5432 for database studies (***)"
    )


def test_mask_url_query_value_with_hash() -> None:
    # SQLAlchemy reads a query value up to the next "&", a "#" included: all of it is masked
    make_url = pytest.importorskip("sqlalchemy.engine").make_url
    url = "postgresql://bob@h/db?sslmode=require&password=abc#defSECRET&a=b"
    assert make_url(url).query["password"] == "abc#defSECRET"
    assert mask_url(url) == "postgresql://bob@h/db?sslmode=require&password=***&a=b"
    line = f"connection to {url} failed: password abc#defSECRET rejected"
    assert "SECRET" not in mask_secrets(line, url)
    odbc = "mssql+pyodbc://@h/db?odbc_connect=DRIVER%3Dx%3BPWD%3Dab#cdSECRET&x=1"
    assert mask_url(odbc) == "mssql+pyodbc://@h/db?odbc_connect=***&x=1"


@given(
    value=st.text(alphabet="ab#?:/;=%!$", min_size=1, max_size=12).filter(lambda t: "%" not in t)
)
def test_mask_url_hides_every_secret_query_value(value: str) -> None:
    make_url = pytest.importorskip("sqlalchemy.engine").make_url
    url = f"postgresql://bob@h/db?password={value}SECRET&sslmode=require"
    assert make_url(url).query["password"] == f"{value}SECRET"
    assert "SECRET" not in mask_url(url)
    assert "SECRET" not in mask_secrets(f"x {value}SECRET y {url}", url)


def test_an_hour_or_more_is_written_in_hours_and_minutes() -> None:
    assert duration(3599.4) == "59 min 59 s"
    assert duration(3600) == "1 h 0 min"
    assert duration(5430) == "1 h 30 min"


def test_shorten_keeps_a_text_of_exactly_the_limit_whole() -> None:
    text = "a" * 200
    assert shorten(text) == text
    assert shorten("a" * 201) == "a" * 170 + " ... (201 characters)"


def test_counted_is_singular_for_one_only() -> None:
    assert counted(1, "trial") == "1 trial"
    assert counted(0, "trial") == "0 trials"
    assert counted(2, "trial") == "2 trials"


def test_an_accuracy_cell_is_a_percentage_with_two_decimals() -> None:
    assert accuracy_cell(0.12345) == "12.35%"
    assert accuracy_cell(1.0) == "100.00%"
    assert accuracy_cell(math.nan) == "-"


def test_a_three_character_password_is_masked_outside_the_url_only_after_a_keyword() -> None:
    url = "postgresql://u:abc@h/db"
    assert mask_secrets(f"{url}: user u with abc refused", url) == (
        "postgresql://u:***@h/db: user u with abc refused"
    )
    assert mask_secrets("connect failed: password abc refused", url) == (
        "connect failed: password *** refused"
    )
    # four characters and more: masked wherever it stands as a token of its own
    url4 = "postgresql://u:abcd@h/db"
    assert mask_secrets("user u with abcd refused", url4) == "user u with *** refused"


def test_failure_quotes_the_type_and_the_first_line() -> None:
    assert failure(ValueError("  bad value\nsecond line")) == "ValueError: bad value"
    assert failure(ValueError("\nonly line")) == "ValueError: only line"
    assert failure(KeyError()) == "KeyError"


def test_a_loss_cell_has_four_significant_digits_or_a_word() -> None:
    assert loss_cell(0.123456) == "0.1235"
    assert loss_cell(math.inf) == "diverged"
    assert loss_cell(math.nan) == "-"
    assert loss_cell(-math.inf) == "-inf"  # measured: not shown as missing


def test_a_duration_of_nothing_is_zero_and_not_a_number_is_a_dash() -> None:
    assert duration(0) == "0 ms"
    assert duration(math.nan) == "-"


def test_round_floats_leaves_integers_words_and_versions_as_written() -> None:
    text = "seed=12345678901234567890 v2.0.1 w_0.123456789 1.234567.5"
    assert round_floats(text) == text
    # a number whose short form is no shorter stays as written
    assert round_floats("lr=1.e-5, warmup=10.e3") == "lr=1.e-5, warmup=10.e3"


def test_wrap_spec_keeps_a_line_of_exactly_the_width() -> None:
    assert wrap_spec("f(a, b)", 7) == ["f(a, b)"]
    assert wrap_spec("f(a, b)", 6) == ["f(a,", "b)"]


def test_mask_url_masks_every_kind_of_secret_query_argument() -> None:
    url = "postgresql://u@h/db?api_key=abc&Token=x&X_SECRET=1&PASSWORD=2&sslmode=require"
    assert mask_url(url) == (
        "postgresql://u@h/db?api_key=***&Token=***&X_SECRET=***&PASSWORD=***&sslmode=require"
    )
    # with a password in the URL too
    assert mask_url("postgresql://u:pw@h/db?sslpassword=abc&x=1") == (
        "postgresql://u:***@h/db?sslpassword=***&x=1"
    )
    odbc = "mssql+pyodbc://@h/db?odbc_connect=DRIVER%3Dx%3BPASSWD%3Ds3cretpw&x=1"
    assert mask_url(odbc) == "mssql+pyodbc://@h/db?odbc_connect=***&x=1"
    assert mask_secrets("bad password s3cretpw", odbc) == "bad password ***"
    assert mask_url(None) is None  # type: ignore[arg-type]


def test_mask_secrets_finds_the_passwords_of_a_connection_string() -> None:
    url = "mssql+pyodbc://@h/db?odbc_connect=DRIVER%3Dx%3BPWD%3D%7Bs3cretpw%7D&x=1"
    assert mask_secrets("login failed: s3cretpw", url) == "login failed: ***"
    # the longer secret is masked whole before a shorter one inside it
    url = "postgresql://u:abcd@h/db?password=abcd-efgh"
    assert mask_secrets("rejected abcd-efgh", url) == "rejected ***"


def test_mask_secrets_masks_only_whole_tokens() -> None:
    url = "postgresql://postgres:postgres@h/db"
    assert mask_secrets("the postgresql server: mypostgres postgres", url) == (
        "the postgresql server: mypostgres ***"
    )
    url = "postgresql://u:t@h/db"
    assert mask_secrets('password "t" rejected', url) == 'password "***" rejected'
    assert mask_secrets("x", "") == "x" and mask_secrets("x", None) == "x"


def test_the_pieces_of_a_password_with_an_unencoded_at_are_masked() -> None:
    url = "postgresql://u:abc@defg@h/db"
    assert mask_secrets("no host abc, defg", url) == "no host ***, ***"
    url = "postgresql://u:abc:xyz@qrs@h/db"
    assert mask_secrets("host qrs user abc xyz", url) == "host *** user *** ***"


def test_unencoded_at_counts_the_at_signs_of_the_credentials_only() -> None:
    assert unencoded_at("postgresql://u:a@b@h/db")
    assert unencoded_at("postgresql://u:a/b@c@h/db")  # a "/" in the password
    assert not unencoded_at("postgresql://u:pw@h?x=a@b")  # an "@" in the query
    assert not unencoded_at("postgresql://u:pw@h/db")


def test_mask_keywords_masks_each_secret_value() -> None:
    text = "host=h password='a b' sslpassword=\"x y\" api_key={p q} token=v;w user=u"
    assert mask_keywords(text) == (
        "host=h password=*** sslpassword=*** api_key=*** token=*** user=u"
    )
    # an unclosed quote or brace: the rest is the value
    assert mask_keywords("host=h password='unclosed rest") == "host=h password=***"
    assert mask_keywords("password={open rest") == "password=***"
    assert mask_keywords("PWD=abc;UID=u") == "PWD=***"


def test_mask_arguments_masks_what_each_argument_echoes() -> None:
    arg = "host=h password=s3cret"
    assert mask_arguments(f"bad argument: {arg}", [3, None, "", arg]) == (
        "bad argument: host=h password=***"
    )
    assert mask_arguments(f'cannot parse "{arg}"', [arg]) == 'cannot parse "host=h password=***"'
    assert mask_arguments('cannot parse "host=h password=s3cr..."', [arg]) == (
        'cannot parse "host=h password=***'
    )
    # a URL argument: its own secrets, and nothing else of the message
    url = "postgresql://u:pw12@h/db?password=x9"
    assert mask_arguments(f"bad {url}: see token=abc", [url]) == (
        "bad postgresql://u:***@h/db?password=***: see token=abc"
    )


def test_an_accuracy_that_is_not_finite_is_a_dash() -> None:
    assert accuracy_cell(math.inf) == "-" and accuracy_cell(-math.inf) == "-"


def test_group_ratios_are_written_with_three_significant_digits_or_not_at_all() -> None:
    assert group_ratios_text([1.0, 0.12345, 0.001]) == "x1, x0.123, x0.001"
    assert group_ratios_text([0.1, 0.1]) is None and group_ratios_text([]) is None


def test_round_floats_writes_a_huge_whole_number_in_exponent_form() -> None:
    # an integral value from 1e15 up keeps its exponent form: its digits would be longer
    assert round_floats("f(x=1.00000e20)") == "f(x=1e+20)"
    assert round_floats("y=1.00000000000000e14") == "y=100000000000000"


def test_round_floats_leaves_a_number_after_a_point_as_written() -> None:
    assert round_floats("v1.0.123456789") == "v1.0.123456789"
    assert round_floats(".0.123456789") == ".0.123456789"


def test_shorten_to_fewer_than_30_characters_keeps_only_the_count() -> None:
    assert shorten("x" * 100, 10) == " ... (100 characters)"


def test_url_parts_of_anything_but_a_url_is_none() -> None:
    assert url_parts(None) is None  # type: ignore[arg-type]
    assert url_parts("sqlite.db") is None


@pytest.mark.parametrize(
    "name,secret",
    [
        ("--api-tokn", True),  # nearly "token"
        ("--my_token_file", True),  # words split at "_" too
        ("--DB-PASSWORD", True),  # any case
        ("--storage", False),
        ("--numiter", False),
    ],
)
def test_secret_like_finds_a_secret_word_in_an_option_name(name: str, secret: bool) -> None:
    assert secret_like(name) is secret


def test_mask_url_leaves_text_that_is_not_a_url_unchanged() -> None:
    assert mask_url("not a url?password=x&token=y") == "not a url?password=x&token=y"


def test_a_short_password_is_masked_after_a_keyword_in_any_case() -> None:
    url = "postgresql://u:t@h/db"
    assert mask_secrets("PASSWORD t, Pwd=t", url) == "PASSWORD ***, Pwd=***"


def test_a_title_of_more_than_six_lines_is_cut_in_its_sixth_with_the_length() -> None:
    spec = "f(" + ", ".join(f"a{i}={i}" for i in range(40)) + ")"
    assert len(spec) == 301 and len(wrap_spec(spec, 30)) == 12
    lines = title_lines(spec, 30)
    assert lines == [*wrap_spec(spec, 30)[:5], "a19=19, a2 ... (301 characters)"]
    # a narrow title still shows ten characters of its sixth line
    narrow = "f(" + "x" * 40 + ", " + ", ".join(["y" * 40] * 6) + ")"
    assert title_lines(narrow, 20)[5] == "y" * 10 + f" ... ({len(narrow)} characters)"


def test_a_title_of_six_lines_is_not_cut() -> None:
    spec = "f(" + ", ".join("a" * 20 for _ in range(6)) + ")"
    assert len(wrap_spec(spec, 25)) == 6
    assert title_lines(spec, 25) == wrap_spec(spec, 25)


def test_a_piece_of_a_password_holding_a_shorter_one_is_masked_whole() -> None:
    url = "postgresql://u:abc@abc-xyz@h/db"
    assert mask_secrets("no host abc-xyz", url) == "no host ***"


def test_a_slash_before_the_colon_ends_the_host_not_a_user_name() -> None:
    make_url = pytest.importorskip("sqlalchemy.engine").make_url
    url = "postgresql://a/b:c@h/db"
    parts = url_parts(url)
    assert parts is not None
    assert (parts["username"], parts["password"], parts["ipv4host"], parts["database"]) == (
        None,
        None,
        "a",
        "b:c@h/db",
    )
    read = make_url(url)
    assert (read.username, read.password, read.host, read.database) == (None, None, "a", "b:c@h/db")
