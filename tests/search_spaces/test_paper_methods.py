"""The paper's method lists are defined once, in trainables.methods; the shipped study files
of Tables I-III spell the same rows out (a study file is a self-contained document and cannot
import Python), and this test is what keeps the two in step."""
import pytest

from search_spaces import SPACES
from search_spaces.studyfile import read_study_file
from trainables.methods import TABLE1_METHODS, TABLE23_METHODS


@pytest.mark.parametrize("study,methods", [("table1", TABLE1_METHODS),
                                           ("table2", TABLE23_METHODS),
                                           ("table3", TABLE23_METHODS)])
def test_the_paper_tables_study_files_list_exactly_the_paper_rows_in_order(study, methods):
    assert read_study_file(SPACES[study])["methods"] == list(methods)

