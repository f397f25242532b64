//! The general reader: quick-xml's pull parser over the whole input, for every document the
//! fast scanner declines (attributes, CDATA, a DOCTYPE) and for the wording of every XML error.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::assemble::{Assembler, RowSink};
use super::error::PayrollError;

pub(crate) fn read<'a, S: RowSink<'a>>(
    input: &'a [u8],
    asm: &mut Assembler<'a, S>,
) -> Result<(), PayrollError> {
    // Defaults: end tags must match their start tags; a UTF-8 BOM is skipped.
    let mut reader = Reader::from_reader(input);
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|source| PayrollError::Xml {
            position: reader.error_position(),
            row: asm.rows(),
            source,
        })?;
        match event {
            Event::Start(e) => asm
                .start(e.name().0.as_bytes())
                .map_err(|s| PayrollError::shape(s, position))?,
            Event::Empty(e) => {
                asm.start(e.name().0.as_bytes())
                    .map_err(|s| PayrollError::shape(s, position))?;
                asm.end();
            }
            Event::End(_) => asm.end(),
            Event::Text(t) => asm.text(t.into_inner()),
            Event::CData(c) => asm.text(c.into_inner()),
            Event::GeneralRef(r) => asm.reference(&r),
            Event::Eof => return Ok(()),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}
