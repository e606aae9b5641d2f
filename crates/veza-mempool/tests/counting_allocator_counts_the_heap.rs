//! The counting allocator's figure rises and falls with a known allocation.

use veza_mempool::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::system();

#[test]
fn allocated_bytes_follow_a_known_allocation() {
    const SIZE: usize = 64 << 20;
    let before = ALLOC.allocated();
    let mut block = vec![0u8; SIZE];
    block[SIZE - 1] = 1;
    let during = ALLOC.allocated();
    // Other threads of the test harness may allocate a little meanwhile.
    assert!(
        during >= before + SIZE && during < before + SIZE + (1 << 20),
        "{before} -> {during}"
    );
    assert!(ALLOC.peak() >= during);
    block.truncate(10);
    block.shrink_to_fit(); // realloc down
    let shrunk = ALLOC.allocated();
    assert!(shrunk < before + (1 << 20), "{before} -> {shrunk}");
    drop(block);
}
