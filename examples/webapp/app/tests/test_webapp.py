"""Unit tests of the example application (run by the pipeline's Test stage)."""

import json
import unittest

from webapp import application, greeting


def call(path: str, query: str = "") -> tuple[str, dict[str, str]]:
    seen: dict[str, str] = {}

    def start_response(status: str, _headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(application({"PATH_INFO": path, "QUERY_STRING": query}, start_response))
    return seen["status"], json.loads(body)


class GreetingTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(greeting("Ada"), "Hello, Ada!")

    def test_blank_name_greets_the_world(self) -> None:
        self.assertEqual(greeting("   "), "Hello, world!")

    def test_collapses_whitespace(self) -> None:
        self.assertEqual(greeting(" Ada   Lovelace "), "Hello, Ada Lovelace!")


class RoutesTest(unittest.TestCase):
    def test_health(self) -> None:
        status, body = call("/health")
        self.assertEqual(status, "200 OK")
        self.assertEqual(body["status"], "ok")

    def test_greet_reads_the_query(self) -> None:
        self.assertEqual(call("/greet", "name=Grace")[1], {"message": "Hello, Grace!"})

    def test_unknown_route_is_404(self) -> None:
        self.assertTrue(call("/nope")[0].startswith("404"))


if __name__ == "__main__":
    unittest.main()
