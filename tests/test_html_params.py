"""Form inputs are written exactly as WTForms writes them, by Classgate's quicker html_params."""

from __future__ import annotations

import pytest
from markupsafe import Markup
from wtforms.widgets import Input
from wtforms.widgets.core import html_params as wtforms_html_params

from membership.forms_common import html_params
from membership.join.forms import AgreeForm, DetailsForm

CASES = [
    {"name": "code", "id": "code", "type": "text", "value": ""},
    {"class_": "input input--code", "autocomplete": "off", "spellcheck": "false"},
    {"required": True, "readonly": False, "checked": True, "disabled": False},
    {"aria_describedby": "email-hint email-error", "data_test_id": "x_y", "for_": "email"},
    {"value": 'Sam "The Parent" <sam@example.com> & co\'s'},
    {"value": Markup('already "safe" <b>markup</b>')},
    {"value": None, "maxlength": 40, "minlength": 0, "step": 1.5},
    {"value": "Zoë Ó Briain – ‘quoted’"},
    {},
]


@pytest.mark.parametrize("attributes", CASES)
def test_same_attributes_as_wtforms(attributes):
    """Each case, escaping and order included, comes out character for character as WTForms' own."""
    ours = html_params(**attributes)
    assert isinstance(ours, Markup)
    assert ours == wtforms_html_params(**attributes)


def test_inputs_of_the_journey_forms_use_it(app):
    """Text, email, tel, radio, checkbox and hidden inputs and the CSRF token render as before."""
    with app.test_request_context("/", method="POST", data={
        "name": 'Sam "Quote" <Parent>', "email": "sam@example.com", "mobile": "07911 123456",
        "relationship": "carer", "coc_version": "3", "agree_coc": "y",
    }):
        details, agree = DetailsForm(), AgreeForm()
        fields = [*details, *details.relationship, *agree]
        assert Input.html_params is not wtforms_html_params
        rendered = [str(field(class_="input", aria_describedby="hint")) for field in fields]
        Input.html_params = staticmethod(wtforms_html_params)
        try:
            expected = [str(field(class_="input", aria_describedby="hint")) for field in fields]
        finally:
            Input.html_params = staticmethod(html_params)
    assert rendered == expected
    assert any('name="name"' in html and 'value="Sam &#34;Quote&#34; &lt;Parent&gt;"' in html for html in rendered)
    assert any('name="csrf_token" type="hidden"' in html for html in rendered)
    assert any('checked' in html and 'value="carer"' in html for html in rendered)
