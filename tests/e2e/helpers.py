"""What the browser tests read off the pages."""

from pathlib import Path

from search.models import Item

RESULTS_READY = """() => {
  const results = document.getElementById("results");
  return results && !results.hidden && results.getAttribute("aria-busy") !== "true"
    && results.querySelector(".card, .notice");
}"""


def wait_for_results(page) -> None:
    page.wait_for_function(RESULTS_READY)


def result_items(page) -> list[Item]:
    """The items on the results grid, in page order, read back from the database."""
    ids = [int(i) for i in page.locator("#results .grid > li.card").evaluate_all("els => els.map(e => e.dataset.item)")]
    items = Item.objects.in_bulk(ids)
    return [items[i] for i in ids]


def shoot(page, output_dir, name: str) -> None:
    page.screenshot(path=str(output_dir / f"e2e-{name}.png"), full_page=True)


AXE = Path(__file__).resolve().parents[2] / "search" / "static" / "search" / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}


def axe_violations(page, impacts=("serious", "critical")) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:4]}"
            for v in found if v["impact"] in impacts]


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert not violations, "\n".join(violations)
